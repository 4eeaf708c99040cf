"""Unit tests for services.common.pool: real child processes, no network.

Functions are shipped with ``dill.dumps(fn, recurse=True)``, so they travel by value and the
children never need to import this module.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import types
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import dill
import pytest
from faas.v1 import common_pb2

from services.common.pool import Job, Outcome, ProcessPool

COMPLETED = common_pb2.TASK_STATUS_COMPLETED
FAILED = common_pb2.TASK_STATUS_FAILED
WAIT = 10.0  # generous ceiling for anything that should take well under a second


class Recorder:
    """Collects outcomes and replacement notices from a pool."""

    def __init__(self) -> None:
        self.outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self.slot_ready = asyncio.Event()

    def on_outcome(self, outcome: Outcome) -> None:
        self.outcomes.put_nowait(outcome)

    def on_slot_ready(self) -> None:
        self.slot_ready.set()

    def pool(self, size: int = 1, **options: Any) -> ProcessPool:
        return ProcessPool(size, self.on_outcome, on_slot_ready=self.on_slot_ready, **options)

    async def next(self) -> Outcome:
        return await asyncio.wait_for(self.outcomes.get(), WAIT)

    async def replacement_ready(self) -> None:
        await asyncio.wait_for(self.slot_ready.wait(), WAIT)
        self.slot_ready.clear()


def make_job(
    fn: Callable[..., Any] | None,
    *args: Any,
    function_id: str | None = None,
    function_payload: bytes | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> Job:
    attempt = uuid.uuid4().hex
    if function_payload is None:
        function_payload = dill.dumps(fn, recurse=True)
    return Job(
        task_id=f"task-{attempt}",
        attempt_id=attempt,
        function_id=function_id or f"fn-{attempt}",
        function_payload=function_payload,
        args_payload=dill.dumps((args, kwargs)),
        timeout=timeout,
    )


def run(scenario: Callable[[Recorder], Awaitable[None]]) -> None:
    async def main() -> None:
        await scenario(Recorder())

    asyncio.run(main())


def completed_value(outcome: Outcome) -> Any:
    assert outcome.status == COMPLETED, outcome.message
    assert outcome.cause == common_pb2.FAILURE_CAUSE_UNSPECIFIED
    assert outcome.message == ""
    return dill.loads(outcome.result)


@pytest.fixture(autouse=True)
def no_leftover_children() -> Iterator[None]:
    yield
    assert multiprocessing.active_children() == []


def test_round_trip() -> None:
    def double(x: int) -> int:
        return x * 2

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            job = make_job(double, 3)
            pool.submit(job)
            outcome = await rec.next()
            assert (outcome.task_id, outcome.attempt_id) == (job.task_id, job.attempt_id)
            assert completed_value(outcome) == 6

    run(scenario)


def test_kwargs() -> None:
    def describe(name: str, *, greeting: str = "hello", times: int = 1) -> str:
        return " ".join([f"{greeting} {name}"] * times)

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(describe, "ada", greeting="hi", times=2))
            assert completed_value(await rec.next()) == "hi ada hi ada"

    run(scenario)


def test_function_payload_is_sent_to_a_child_once() -> None:
    def triple(x: int) -> int:
        return x * 3

    def negate(x: int) -> int:
        return -x

    async def scenario(rec: Recorder) -> None:
        # An empty payload cannot be loaded: a job that carries one completes only if the pool
        # does not send it, i.e. the child already holds the function.
        async with rec.pool(max_cached_functions=1) as pool:
            pool.submit(make_job(triple, 2, function_id="triple"))
            assert completed_value(await rec.next()) == 6
            pool.submit(make_job(None, 5, function_id="triple", function_payload=b""))
            assert completed_value(await rec.next()) == 15

            # Loading a second function evicts the first (capacity 1), so its payload is sent
            # again, and an empty one fails to load.
            pool.submit(make_job(negate, 4, function_id="negate"))
            assert completed_value(await rec.next()) == -4
            pool.submit(make_job(None, 5, function_id="triple", function_payload=b""))
            outcome = await rec.next()
            assert outcome.cause == common_pb2.FAILURE_CAUSE_BAD_PAYLOAD

            # A failed load is not cached: the next job with a good payload sends it again.
            pool.submit(make_job(triple, 1, function_id="triple"))
            assert completed_value(await rec.next()) == 3

    run(scenario)


def test_raising_function_fails_with_the_exception() -> None:
    def explode(what: str) -> None:
        raise ValueError(f"boom: {what}")

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(explode, "now"))
            outcome = await rec.next()
            assert (outcome.status, outcome.cause) == (FAILED, common_pb2.FAILURE_CAUSE_RAISED)
            error = dill.loads(outcome.result)
            assert type(error) is ValueError
            assert error.args == ("boom: now",)
            assert outcome.message == "ValueError: boom: now"
            assert outcome.traceback.startswith("Traceback (most recent call last):")
            assert "in explode" in outcome.traceback
            assert "_child.py" not in outcome.traceback
            assert outcome.traceback.rstrip().endswith("ValueError: boom: now")

    run(scenario)


def test_system_exit_is_a_failure_and_the_child_survives() -> None:
    def leave() -> None:
        sys.exit(3)

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(os.getpid))
            pid = completed_value(await rec.next())
            pool.submit(make_job(leave))
            outcome = await rec.next()
            assert (outcome.status, outcome.cause) == (FAILED, common_pb2.FAILURE_CAUSE_RAISED)
            assert outcome.message == "SystemExit: 3"
            assert isinstance(dill.loads(outcome.result), SystemExit)
            pool.submit(make_job(os.getpid))
            assert completed_value(await rec.next()) == pid

    run(scenario)


def test_exception_that_cannot_be_rebuilt_becomes_runtime_error() -> None:
    class Picky(Exception):
        def __init__(self, code: int, detail: str) -> None:
            super().__init__(f"{code}: {detail}")

    def explode() -> None:
        raise Picky(7, "bad")

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(explode))
            outcome = await rec.next()
            assert outcome.cause == common_pb2.FAILURE_CAUSE_RAISED
            assert outcome.message == "Picky: 7: bad"
            error = dill.loads(outcome.result)
            assert type(error) is RuntimeError
            assert "7: bad" in str(error)

    run(scenario)


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (lambda: os._exit(1), "exit code 1 while"),
        (lambda: os.kill(os.getpid(), signal.SIGKILL), "exit code -9 (SIGKILL) while"),
    ],
    ids=["exit", "sigkill"],
)
def test_dead_child_is_reported_and_replaced(fn: Callable[[], None], expected: str) -> None:
    async def scenario(rec: Recorder) -> None:
        async with rec.pool(2) as pool:
            job = make_job(fn)
            pool.submit(job)
            outcome = await rec.next()
            assert outcome.attempt_id == job.attempt_id
            assert (outcome.status, outcome.cause) == (
                FAILED,
                common_pb2.FAILURE_CAUSE_PROCESS_DIED,
            )
            assert expected in outcome.message
            error = pickle.loads(outcome.result)
            assert type(error) is ChildProcessError
            assert str(error) == outcome.message
            assert pool.running_attempts() == []

            await rec.replacement_ready()
            assert pool.free_slots == pool.size == 2
            for n in range(2):
                pool.submit(make_job(abs, -n))
            assert sorted([completed_value(await rec.next()) for _ in range(2)]) == [0, 1]

    run(scenario)


def test_timeout_kills_the_child_and_the_pool_recovers() -> None:
    def nap() -> None:
        time.sleep(30)

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            job = make_job(nap, timeout=0.3)
            started = time.monotonic()
            pool.submit(job)
            outcome = await rec.next()
            assert time.monotonic() - started < 5
            assert (outcome.status, outcome.cause) == (FAILED, common_pb2.FAILURE_CAUSE_TIMEOUT)
            assert outcome.message == "task exceeded its time limit of 0.3 s"
            error = pickle.loads(outcome.result)
            assert type(error) is TimeoutError
            assert str(error) == outcome.message

            await rec.replacement_ready()
            assert pool.free_slots == 1
            pool.submit(make_job(abs, -2, timeout=5))
            assert completed_value(await rec.next()) == 2

    run(scenario)


@pytest.mark.parametrize(
    ("args_payload", "message"),
    [
        (b"not a pickle", "arguments could not be deserialized: UnpicklingError"),
        (dill.dumps(5), "expected a 2-tuple (args, kwargs), got int"),
        (dill.dumps((1, 2, 3)), "expected a 2-tuple (args, kwargs), got a tuple of 3"),
        (dill.dumps(({1}, {})), "positional arguments must be a tuple or list, got set"),
        (dill.dumps(((), [])), "keyword arguments must be a dict with str keys"),
        (dill.dumps(((), {1: 2})), "keyword arguments must be a dict with str keys"),
    ],
    ids=["garbage", "not-a-tuple", "wrong-length", "bad-args", "bad-kwargs", "bad-keys"],
)
def test_bad_args_payload(args_payload: bytes, message: str) -> None:
    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            job = make_job(abs, 1)
            pool.submit(
                Job(
                    job.task_id, job.attempt_id, job.function_id, job.function_payload, args_payload
                )
            )
            outcome = await rec.next()
            assert (outcome.status, outcome.cause) == (
                FAILED,
                common_pb2.FAILURE_CAUSE_BAD_PAYLOAD,
            )
            assert message in outcome.message
            assert isinstance(dill.loads(outcome.result), Exception)

    run(scenario)


def test_bad_function_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    # A function pickled by reference to a module that the child cannot import has a cause of
    # its own (tests/unit/test_pool_code_path.py); a broken stream or a plain value is BAD_PAYLOAD.
    module = types.ModuleType("faas_pool_test_missing_module")
    exec("def answer():\n    return 42\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    by_reference = dill.dumps(module.answer)

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(None, function_payload=by_reference))
            outcome = await rec.next()
            assert (outcome.status, outcome.cause) == (
                FAILED,
                common_pb2.FAILURE_CAUSE_CODE_NOT_IMPORTABLE,
            )
            assert "module 'faas_pool_test_missing_module'" in outcome.message
            assert isinstance(dill.loads(outcome.result), ModuleNotFoundError)

            pool.submit(make_job(None, function_payload=dill.dumps(len)[:-1]))
            outcome = await rec.next()
            assert outcome.cause == common_pb2.FAILURE_CAUSE_BAD_PAYLOAD
            assert outcome.message.startswith("function could not be deserialized: ")

            pool.submit(make_job(None, function_payload=dill.dumps(42)))
            outcome = await rec.next()
            assert outcome.cause == common_pb2.FAILURE_CAUSE_BAD_PAYLOAD
            assert "not a callable" in outcome.message

    run(scenario)


def test_unserializable_result() -> None:
    def numbers() -> Iterator[int]:
        return (n for n in range(3))

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(numbers))
            outcome = await rec.next()
            assert (outcome.status, outcome.cause) == (
                FAILED,
                common_pb2.FAILURE_CAUSE_RESULT_NOT_SERIALIZABLE,
            )
            assert outcome.message == (
                "result could not be serialized: TypeError: cannot pickle 'generator' object"
            )
            error = dill.loads(outcome.result)
            assert type(error) is TypeError
            assert "generator" in str(error)

            # A lock is not a problem for dill; the child keeps serving.
            pool.submit(make_job(threading.Lock))
            completed_value(await rec.next())

    run(scenario)


def test_large_payloads_travel_off_the_loop() -> None:
    def repeat(data: bytes) -> bytes:
        return data * 2

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            data = os.urandom(3 << 20)
            pool.submit(make_job(repeat, data))
            assert completed_value(await rec.next()) == data * 2

    run(scenario)


def test_free_slots_and_wait_idle() -> None:
    async def scenario(rec: Recorder) -> None:
        async with rec.pool(2) as pool:
            assert (pool.size, pool.free_slots, pool.running_attempts()) == (2, 2, [])
            assert await pool.wait_idle(0)
            job = make_job(time.sleep, 0.2)
            pool.submit(job)
            assert pool.free_slots == 1
            assert pool.running_attempts() == [job.attempt_id]
            assert await pool.wait_idle(WAIT)
            assert (await rec.next()).attempt_id == job.attempt_id
            assert (pool.free_slots, pool.running_attempts()) == (2, [])

    run(scenario)


def test_submit_needs_an_idle_child_and_close_drops_running_jobs() -> None:
    async def scenario(rec: Recorder) -> None:
        pool = rec.pool(2)
        with pytest.raises(RuntimeError, match="not been started"):
            pool.submit(make_job(abs, 1))
        await pool.start()
        jobs = [make_job(time.sleep, 30) for _ in range(2)]
        for job in jobs:
            pool.submit(job)
        assert pool.free_slots == 0
        assert sorted(pool.running_attempts()) == sorted(job.attempt_id for job in jobs)
        with pytest.raises(RuntimeError, match="no idle worker process"):
            pool.submit(make_job(abs, 1))
        assert not await pool.wait_idle(0.05)
        await pool.close()
        assert rec.outcomes.empty()
        assert pool.running_attempts() == []
        with pytest.raises(RuntimeError, match="closed"):
            pool.submit(make_job(abs, 1))

    run(scenario)


def test_close_leaves_no_child_processes() -> None:
    async def scenario(rec: Recorder) -> None:
        pool = rec.pool(2)
        await pool.start()

        def slow_pid() -> int:
            time.sleep(0.2)
            return os.getpid()

        # Two jobs that overlap run in different children, so they report both pids.
        for _ in range(2):
            pool.submit(make_job(slow_pid))
        pids = {completed_value(await rec.next()) for _ in range(2)}
        assert len(pids) == 2
        await pool.close()
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)

    run(scenario)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="start method"):
        ProcessPool(1, print, start_method="threads")
    with pytest.raises(ValueError, match="size"):
        ProcessPool(0, print)


def test_interpreter_exit_does_not_wait_for_an_unclosed_pool() -> None:
    script = """
import asyncio, dill
from services.common.pool import Job, ProcessPool

async def main():
    done = asyncio.Event()
    pool = ProcessPool(1, lambda outcome: done.set())
    await pool.start()
    pool.submit(Job("t", "a", "f", dill.dumps(abs), dill.dumps(((-1,), {}))))
    await done.wait()
    pool.submit(Job("t", "b", "g", dill.dumps(__import__("time").sleep), dill.dumps(((60,), {}))))

asyncio.run(main())
"""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    finished = subprocess.run(
        [sys.executable, "-c", script], cwd=root, timeout=WAIT, capture_output=True, check=False
    )
    assert finished.returncode == 0, finished.stderr.decode()
