"""User code is kept away from the platform: no secrets in reach, no signals to the agent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration import secret_hunter
from tests.integration.conftest import PlatformFactory
from tests.support import RestClient

SECRET = "s3cr3t-marker-for-the-isolation-test"


def _hunt(make_platform: PlatformFactory, mode: str) -> tuple[dict[str, object], int, str]:
    platform = make_platform(mode=mode, extra_env={"FAAS_TEST_SECRET": SECRET})
    # The pool's parent: the worker agent (push) or the dispatcher (local mode).
    owner = platform.workers[0].pid if mode == "push" else platform.dispatcher.pid
    rest = RestClient(platform.rest_url)
    try:
        found = rest.run(rest.register(secret_hunter.hunt), owner)
    finally:
        rest.close()
    assert found["parent"] == owner
    return found, owner, platform.redis_url


def _assert_no_secret(text: str, redis_url: str) -> None:
    assert SECRET not in text
    assert redis_url not in text
    password = redis_url.rpartition("@")[0].rpartition(":")[2]
    if password:
        assert password not in text


@pytest.mark.parametrize("mode", ["push", "local"])
def test_a_task_gets_a_scrubbed_environment(make_platform: PlatformFactory, mode: str) -> None:
    found, _, redis_url = _hunt(make_platform, mode)
    at_exec = found["self_environ"]
    if at_exec is None:  # we may read it (root, or its own user), the task may not
        pid = found["pid"]
        assert isinstance(pid, int)
        at_exec = Path(f"/proc/{pid}/environ").read_bytes().decode()
    assert isinstance(at_exec, str) and "PATH=" in at_exec
    own = repr((found["environ"], at_exec))
    _assert_no_secret(own, redis_url)
    environ = found["environ"]
    assert isinstance(environ, dict)
    assert not [name for name in environ if name.startswith(("FAAS_", "REDIS"))], environ
    assert "PATH" in environ


@pytest.mark.skipif(os.geteuid() != 0, reason="another uid for user code needs a root worker")
def test_a_task_on_a_root_worker_runs_as_another_user_and_finds_nothing(
    make_platform: PlatformFactory,
) -> None:
    found, agent, redis_url = _hunt(make_platform, "push")
    _assert_no_secret(repr(found), redis_url)
    assert found["uid"] != 0
    assert found["kills"] == {agent: "PermissionError"}
