"""Pool processes and what user code starts from them: process groups and parent death.

A user's function may fork or start programs. Those grandchildren must not hide the death of
the pool process, must die with it on a timeout, retirement or close, and a pool process must
not outlive the process that owns the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faas.v1 import common_pb2

from tests.unit.test_pool import WAIT, Recorder, completed_value, make_job, run

FAILED = common_pb2.TASK_STATUS_FAILED
ROOT = Path(__file__).resolve().parents[2]


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def until_gone(pid: int, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} is still alive"
        await asyncio.sleep(0.05)


@pytest.fixture
def strays() -> Iterator[list[int]]:
    """Pids a test started through user code; any still alive at the end is killed."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def fork_sleeper() -> int:
    pid = os.fork()
    if pid == 0:
        time.sleep(300)
        os._exit(0)
    return pid


def popen_sleeper() -> int:
    # close_fds=False: the program inherits every inheritable descriptor of the pool process.
    return subprocess.Popen(["sleep", "300"], close_fds=False).pid


def die() -> None:
    os._exit(3)


@pytest.mark.parametrize("start_grandchild", [fork_sleeper, popen_sleeper], ids=["fork", "popen"])
def test_a_grandchild_does_not_hide_the_death_of_its_pool_process(
    start_grandchild: Callable[[], int], strays: list[int]
) -> None:
    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(start_grandchild))
            grandchild = completed_value(await rec.next())
            strays.append(grandchild)
            assert not gone(grandchild)

            job = make_job(die)
            pool.submit(job)
            outcome = await asyncio.wait_for(rec.outcomes.get(), 20)
            assert outcome.attempt_id == job.attempt_id
            assert (outcome.status, outcome.cause) == (
                FAILED,
                common_pb2.FAILURE_CAUSE_PROCESS_DIED,
            )
            assert "exit code 3" in outcome.message
            await until_gone(grandchild)

            await rec.replacement_ready()
            pool.submit(make_job(abs, -4))
            assert completed_value(await rec.next()) == 4

    run(scenario)


def test_a_timeout_kills_the_grandchildren_too(tmp_path: Path, strays: list[int]) -> None:
    pid_file = tmp_path / "grandchild"

    def fork_and_overrun(path: str) -> None:
        pid = os.fork()
        if pid == 0:
            time.sleep(300)
            os._exit(0)
        with open(path, "w") as file:
            file.write(str(pid))
        time.sleep(300)

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(fork_and_overrun, str(pid_file), timeout=1.0))
            outcome = await rec.next()
            assert outcome.cause == common_pb2.FAILURE_CAUSE_TIMEOUT
            grandchild = int(pid_file.read_text())
            strays.append(grandchild)
            await until_gone(grandchild)

            await rec.replacement_ready()
            pool.submit(make_job(abs, -1))
            assert completed_value(await rec.next()) == 1

    run(scenario)


def test_close_kills_the_grandchildren(strays: list[int]) -> None:
    async def scenario(rec: Recorder) -> None:
        pool = rec.pool()
        await pool.start()
        pool.submit(make_job(fork_sleeper))
        grandchild = completed_value(await rec.next())
        strays.append(grandchild)
        await pool.close()
        await until_gone(grandchild)

    run(scenario)


def test_each_pool_process_leads_its_own_session() -> None:
    def ids() -> tuple[int, int, int]:
        return os.getpid(), os.getpgid(0), os.getsid(0)

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(ids))
            pid, group, session = completed_value(await rec.next())
            assert pid == group == session
            assert session != os.getsid(0)

    run(scenario)


_OWNER_SCRIPT = """
import asyncio, sys
import dill
from services.common.pool import Job, ProcessPool

def work(path):
    import os, time
    grandchild = os.fork()
    if grandchild == 0:
        os.setsid()  # out of the pool process's group: only the parent-death signal is left
        time.sleep(300)
        os._exit(0)
    with open(path + ".part", "w") as file:
        file.write(f"{os.getpid()} {grandchild}")
    os.rename(path + ".part", path)
    time.sleep(300)

async def main():
    pool = ProcessPool(1, lambda outcome: None)
    await pool.start()
    payload = dill.dumps(((sys.argv[1],), {}))
    pool.submit(Job("t", "a", "f", dill.dumps(work, recurse=True), payload))
    await asyncio.sleep(300)

asyncio.run(main())
"""


def test_pool_processes_and_their_forks_die_with_the_process_that_owns_the_pool(
    tmp_path: Path, strays: list[int]
) -> None:
    pid_file = tmp_path / "pool-process"
    owner = subprocess.Popen([sys.executable, "-c", _OWNER_SCRIPT, str(pid_file)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists():
            assert owner.poll() is None, "the pool's owner exited"
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        pool_process, grandchild = map(int, pid_file.read_text().split())
        strays.extend([pool_process, grandchild])
        assert not gone(pool_process) and not gone(grandchild)
        owner.kill()
        owner.wait(WAIT)
        asyncio.run(until_gone(pool_process, 20))
        asyncio.run(until_gone(grandchild, 20))
    finally:
        owner.kill()
        owner.wait(WAIT)
