"""What user code in a pool child can reach of the platform: an allowlisted environment only
(at exec, so /proc/<pid>/environ too), and on a root worker another user, who can neither signal
the pool's process nor read what only root may (real child processes, no network)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dill
import pytest
from faas.v1 import common_pb2

from services.common.pool import RunAsError, child_environment, resolve_run_as
from tests.unit.test_pool import Recorder, completed_value, make_job, run
from tests.unit.test_pool_code_path import write_module

SECRET = "the-platform-secret-" + uuid.uuid4().hex
ROOT = Path(__file__).resolve().parents[2]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root")


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FAAS_TEST_SECRET", SECRET)
    monkeypatch.setenv("REDIS_URL", f"redis://gateway:{SECRET}@127.0.0.1:1/0")
    monkeypatch.setenv("OPERATOR_SETTING", "passed on purpose")
    yield


def test_the_environment_of_user_code_is_the_allowlist_and_what_is_passed() -> None:
    environ = {
        "PATH": "/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TZ": "UTC",
        "TMPDIR": "/tmp",
        "PYTHONHASHSEED": "0",
        "PYTHONPATH": "/opt/platform",
        "REDIS_URL": "redis://:pw@host/0",
        "FAAS_API_KEY": "key",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "MY_VAR": "mine",
    }
    assert child_environment(environ, ["MY_VAR", "ABSENT"], home="/nonexistent") == {
        "PATH": "/bin",
        "HOME": "/nonexistent",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TZ": "UTC",
        "TMPDIR": "/tmp",
        "PYTHONHASHSEED": "0",
        "MY_VAR": "mine",
    }
    assert child_environment({"REDIS_URL": "x"}) == {}


def what_user_code_sees() -> dict[str, Any]:
    import os

    try:  # a child that became another user is not dumpable: this is root's to read
        with open("/proc/self/environ", "rb") as file:
            at_exec: str | None = file.read().decode()
    except PermissionError:
        at_exec = None
    return {"environ": dict(os.environ), "at_exec": at_exec, "pid": os.getpid()}


def environ_at_exec(pid: int) -> str:
    """What ``pid`` was exec'd with, as /proc shows it to us (root, or its own user)."""
    return Path(f"/proc/{pid}/environ").read_bytes().decode()


@pytest.mark.usefixtures("secret_env")
def test_a_pool_child_is_execd_without_the_secrets_of_its_parent() -> None:
    async def scenario(rec: Recorder) -> None:
        async with rec.pool(pass_env=["OPERATOR_SETTING"]) as pool:
            pool.submit(make_job(what_user_code_sees))
            seen = completed_value(await rec.next())
        assert SECRET not in repr(seen)
        assert "REDIS_URL" not in seen["environ"]
        assert "FAAS_TEST_SECRET" not in seen["at_exec"]
        assert seen["environ"]["OPERATOR_SETTING"] == "passed on purpose"
        assert "OPERATOR_SETTING=passed on purpose" in seen["at_exec"]
        assert seen["environ"]["PATH"] == os.environ["PATH"]

    run(scenario)


def try_the_parent(parent: int) -> dict[str, Any]:
    import os
    import signal
    from pathlib import Path

    found: dict[str, Any] = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
    for name, attempt in (
        ("stop", lambda: os.kill(parent, signal.SIGSTOP)),
        ("environ", lambda: Path(f"/proc/{parent}/environ").read_bytes()),
        ("root_home", lambda: os.listdir("/root")),
    ):
        try:
            attempt()
        except OSError as exc:
            found[name] = type(exc).__name__
        else:
            found[name] = "done"
            if name == "stop":
                os.kill(parent, signal.SIGCONT)
    return found


@as_root
@pytest.mark.usefixtures("secret_env")
def test_a_child_of_a_root_pool_runs_as_nobody_and_cannot_touch_its_parent() -> None:
    nobody = resolve_run_as("")
    assert nobody is not None and nobody.name == "nobody"

    async def scenario(rec: Recorder) -> None:
        async with rec.pool(run_as=nobody) as pool:
            pool.submit(make_job(try_the_parent, os.getpid()))
            found = completed_value(await rec.next())
            pool.submit(make_job(what_user_code_sees))
            seen = completed_value(await rec.next())
            assert seen["at_exec"] is None
            at_exec = environ_at_exec(seen["pid"])
        assert "PATH=" in at_exec
        assert SECRET not in at_exec
        assert found == {
            "uid": nobody.uid,
            "gid": nobody.gid,
            "groups": [],
            "stop": "PermissionError",
            "environ": "PermissionError",
            "root_home": "PermissionError",
        }
        assert seen["environ"]["HOME"] == nobody.home
        assert SECRET not in repr(seen)

    run(scenario)


@as_root
@pytest.mark.parametrize("mode", [0o755, 0o700], ids=["readable", "root-only"])
def test_a_code_path_is_used_by_the_task_user_where_it_may_read_it(
    tmp_path: Path, mode: int
) -> None:
    # pytest's tmp_path is root's alone (0700): nobody cannot enter it, yet reaches a folder
    # in it that it may read, through the descriptor its process opened before becoming nobody.
    name = f"faas_private_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "app"
    module = write_module(folder, name, "def double(x):\n    return 2 * x\n")
    folder.chmod(mode)
    payload = dill.dumps(module.double)
    sys.modules.pop(name, None)
    nobody = resolve_run_as("nobody")
    assert nobody is not None

    async def scenario(rec: Recorder) -> None:
        async with rec.pool(code_path=(str(folder),), run_as=nobody) as pool:
            pool.submit(make_job(None, 21, function_payload=payload))
            outcome = await rec.next()
        if mode == 0o755:
            assert completed_value(outcome) == 42
            return
        assert outcome.status == common_pb2.TASK_STATUS_FAILED
        assert outcome.cause == common_pb2.FAILURE_CAUSE_CODE_NOT_IMPORTABLE
        assert f"'{name}'" in outcome.message
        assert f"user nobody (uid {nobody.uid})" in outcome.message
        assert f"cannot read the code path folder(s) {folder}:" in outcome.message

    run(scenario)


def test_run_as_names_a_user_that_exists() -> None:
    with pytest.raises(RunAsError, match="no user 'no-such-user-here' on this host"):
        resolve_run_as("no-such-user-here")
    if os.geteuid() == 0:
        assert resolve_run_as("root") is None  # root keeps its tasks only when told so
        assert resolve_run_as("0") is None
        user = resolve_run_as("")
        assert user is not None and user.uid != 0
    else:
        assert resolve_run_as("") is None
        with pytest.raises(RunAsError, match="only a worker running as root"):
            resolve_run_as("root")


def test_the_platform_processes_are_not_dumpable() -> None:
    code = (
        "from services.common.hardening import is_dumpable, make_non_dumpable\n"
        "before = is_dumpable(); make_non_dumpable(); print(before, is_dumpable())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]


def test_a_worker_told_to_run_tasks_as_a_user_that_does_not_exist_does_not_start() -> None:
    argv = [sys.executable, "-m", "services.worker", "--run-as", "no-such-user-here"]
    out = subprocess.run(
        [*argv, "1", "127.0.0.1:9"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "--run-as 'no-such-user-here': no user 'no-such-user-here' on this host" in out.stderr
