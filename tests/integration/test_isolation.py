"""User code is kept away from the platform: no secrets in reach, no signals to the agent."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from faas.v1 import common_pb2

from tests.integration import secret_hunter
from tests.integration.conftest import PlatformFactory
from tests.integration.test_worker_processes import _gone
from tests.support import GrpcClient, RestClient, wait_until

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
@pytest.mark.parametrize("mode", ["push", "local"])
def test_a_task_on_a_root_worker_runs_as_another_user_and_finds_nothing(
    make_platform: PlatformFactory, mode: str
) -> None:
    """In local mode the pool's parent is the dispatcher, which holds Redis's password."""
    found, agent, redis_url = _hunt(make_platform, mode)
    _assert_no_secret(repr(found), redis_url)
    assert found["uid"] != 0
    assert found["kills"] == {agent: "PermissionError"}


def sleep_long() -> str:
    import time

    time.sleep(120)
    return "slept"


def _task_processes(agent: int) -> list[int]:
    """The agent's children that are not root's: its pool processes, once they changed user."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            uid = entry.stat().st_uid
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == agent and uid != 0:
            out.append(int(entry.name))
    return out


@pytest.mark.fault
@pytest.mark.skipif(os.geteuid() != 0, reason="another uid for user code needs a root worker")
def test_a_task_process_that_became_another_user_still_dies_with_its_agent(
    make_platform: PlatformFactory, tmp_path: Path
) -> None:
    # A change of user clears the parent-death signal: the pool process arms it after. Its task
    # sleeps, so nothing but that signal ends it when the agent dies.
    platform = make_platform(mode="push", workers=0)
    client = GrpcClient(platform)
    worker_id = f"isolated-agent-{os.getpid()}"
    argv = [sys.executable, "-m", "services.worker", "1", platform.dispatcher_target]
    with (tmp_path / "agent.log").open("wb") as log:
        agent = subprocess.Popen(
            [*argv, "--worker-id", worker_id],
            env=platform.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    pool: list[int] = []
    try:
        wait_until(lambda: worker_id in client.workers(), 60, "the agent to connect")
        (task_id,) = client.submit(client.register(sleep_long), [()])
        running = common_pb2.TASK_STATUS_RUNNING
        wait_until(lambda: client.state(task_id).status == running, 60, "the task to start")
        pool = _task_processes(agent.pid)
        assert len(pool) == 1  # one process, nobody's, the task sleeping in it
        agent.kill()
        agent.wait(10)
        wait_until(lambda: _gone(pool[0]), 20, f"pool process {pool[0]} to die")
    finally:
        agent.kill()
        agent.wait(10)
        client.channel.close()
        for pid in pool:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
