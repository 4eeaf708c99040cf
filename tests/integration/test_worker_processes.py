"""Pool processes under a real worker agent or dispatcher: limits, and no orphans."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from faas.v1 import common_pb2

from tests.integration.conftest import PlatformFactory
from tests.support import GrpcClient, wait_until


def record_pid_then_sleep(path: str) -> str:
    import os
    import time

    if os.path.exists(path):
        return "ran again"  # a later attempt, on another worker: nothing to wait for
    with open(path + ".part", "w") as file:
        file.write(str(os.getpid()))
    os.rename(path + ".part", path)
    time.sleep(120)
    return "slept"


def blob(size: int) -> bytes:
    return b"x" * size


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return text.rsplit(")", 1)[1].split()


def _gone(pid: int) -> bool:
    fields = _stat(pid)
    return fields is None or fields[0] in ("Z", "X")  # a zombie nobody reaps counts as gone


@pytest.mark.fault
def test_killed_agent_takes_its_pool_processes_with_it(
    make_platform: PlatformFactory, tmp_path: Path
) -> None:
    platform = make_platform(mode="push", workers=0)
    client = GrpcClient(platform)
    worker_id = f"agent-under-test-{os.getpid()}"
    log = (tmp_path / "agent.log").open("wb")
    argv = [sys.executable, "-m", "services.worker", "1", platform.dispatcher_target]
    agent = subprocess.Popen(
        [*argv, "--worker-id", worker_id],
        env=platform.env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    pool_pid: int | None = None
    shared = Path(tempfile.mkdtemp(prefix="faas-pool-pid-"))
    try:
        wait_until(lambda: worker_id in client.workers(), 60, "the agent to connect")
        shared.chmod(0o1777)  # the task may run as another user (nobody, when root)
        pid_file = shared / "pool-process"
        client.submit(client.register(record_pid_then_sleep), [(str(pid_file),)])
        wait_until(pid_file.exists, 60, "the task to start")
        pool_pid = int(pid_file.read_text())
        fields = _stat(pool_pid)
        assert fields is not None and int(fields[1]) == agent.pid  # its parent is the agent

        agent.kill()
        agent.wait(10)
        wait_until(lambda: _gone(pool_pid), 20, f"pool process {pool_pid} to die")
    finally:
        agent.kill()
        agent.wait(10)
        log.close()
        shutil.rmtree(shared, ignore_errors=True)
        client.channel.close()
        if pool_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pool_pid, signal.SIGKILL)


@pytest.mark.parametrize("mode", ["push", "local"])
def test_result_limit_is_the_setting(make_platform: PlatformFactory, mode: str) -> None:
    platform = make_platform(
        mode=mode, worker_processes=1, extra_env={"FAAS_MAX_RESULT_BYTES": "1000000"}
    )
    client = GrpcClient(platform)
    try:
        function_id = client.register(blob)
        big, small = client.wait_all(client.submit(function_id, [(2_000_000,), (10,)]))
        assert big.status == common_pb2.TASK_STATUS_FAILED
        assert big.error.cause == common_pb2.FAILURE_CAUSE_RESULT_TOO_LARGE
        assert "over the limit of 1000000 bytes" in big.error.message
        assert small.status == common_pb2.TASK_STATUS_COMPLETED
    finally:
        client.channel.close()
