"""Per-task limits in the pool: memory (RLIMIT_AS) and CPU time (RLIMIT_CPU, per job)."""

from __future__ import annotations

import dataclasses
import os
import pickle
import time

import pytest
from faas.v1 import common_pb2

from services.common.pool import Job, Outcome, ProcessPool
from tests.unit.test_pool import Recorder, completed_value, make_job, run

FAILED = common_pb2.TASK_STATUS_FAILED
MEMORY_LIMIT = common_pb2.FAILURE_CAUSE_MEMORY_LIMIT
CPU_LIMIT = common_pb2.FAILURE_CAUSE_CPU_LIMIT
MIB = 1024 * 1024
GIB = 1024 * MIB


def allocate(size: int) -> int:
    return len(bytearray(size))


def grow_a_list() -> int:
    items = []
    while True:  # about 8 bytes a slot, plus each new int's 32: the limit ends it
        items.append(len(items))


def spin(seconds: float) -> float:
    """Use ``seconds`` of CPU time (not wall time: the machine may be shared)."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return time.process_time() - start


def pid_and_allocate(size: int) -> int:
    bytearray(size)
    return os.getpid()


async def outcomes_of(rec: Recorder, pool: ProcessPool, jobs: list[Job]) -> list[Outcome]:
    """Run ``jobs`` in order: all queued at once when the pool's depth allows, else in turn."""
    results = []
    if pool.queue_depth >= len(jobs):
        for job in jobs:
            pool.submit(job)
        return [await rec.next() for _ in jobs]
    for job in jobs:
        pool.submit(job)
        results.append(await rec.next())
    return results


@pytest.mark.parametrize("depth", [1, 4])
def test_a_task_over_the_memory_limit_fails_and_its_process_serves_on(depth: int) -> None:
    async def scenario(rec: Recorder) -> None:
        async with rec.pool(max_memory_bytes=512 * MIB, queue_depth=depth) as pool:
            pool.submit(make_job(os.getpid))
            pid = completed_value(await rec.next())
            jobs = [make_job(allocate, 5 * GIB), make_job(grow_a_list)]
            jobs.append(make_job(pid_and_allocate, 300 * MIB))  # within the limit: runs
            *failed, last = await outcomes_of(rec, pool, jobs)
            for outcome in failed:
                assert (outcome.status, outcome.cause) == (FAILED, MEMORY_LIMIT), outcome.message
                assert "memory limit of 512 MiB" in outcome.message
                assert "--max-task-memory-mb" in outcome.message
                assert "\n" not in outcome.message
                error = pickle.loads(outcome.result)
                assert isinstance(error, MemoryError)
                assert str(error) == outcome.message
            assert completed_value(last) == pid  # the same process, serving on

    run(scenario)


def test_without_a_memory_limit_a_memory_error_is_the_functions_own() -> None:
    def raise_memory_error() -> None:
        raise MemoryError("mine")

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(raise_memory_error))
            outcome = await rec.next()
            assert outcome.cause == common_pb2.FAILURE_CAUSE_RAISED
            pool.submit(make_job(allocate, 600 * MIB))  # no limit: more than above is fine
            assert completed_value(await rec.next()) == 600 * MIB

    run(scenario)


@pytest.mark.parametrize("depth", [1, 4])
def test_a_task_over_the_cpu_limit_fails_and_the_pool_serves_on(depth: int) -> None:
    async def scenario(rec: Recorder) -> None:
        async with rec.pool(max_cpu_seconds=1, queue_depth=depth) as pool:
            # Each job gets its own allowance: three of 0.6 s on one process all complete.
            spins = await outcomes_of(rec, pool, [make_job(spin, 0.6) for _ in range(3)])
            assert all(completed_value(outcome) >= 0.6 for outcome in spins)
            pool.submit(make_job(os.getpid))
            pid = completed_value(await rec.next())
            pool.submit(make_job(spin, 60))
            if depth > 1:  # queued behind the spinner: it goes to the replacement process
                pool.submit(make_job(os.getpid))
            outcome = await rec.next()
            if depth == 1:
                await rec.replacement_ready()
                pool.submit(make_job(os.getpid))
            after = await rec.next()
            assert (outcome.status, outcome.cause) == (FAILED, CPU_LIMIT), outcome.message
            assert "CPU time limit of 1 s" in outcome.message
            assert "--max-task-cpu-seconds" in outcome.message
            assert isinstance(pickle.loads(outcome.result), TimeoutError)
            assert completed_value(after) != pid

    run(scenario)


def test_invalid_task_limits() -> None:
    with pytest.raises(ValueError, match="max_memory_bytes"):
        ProcessPool(1, print, max_memory_bytes=-1)
    with pytest.raises(ValueError, match="max_cpu_seconds"):
        ProcessPool(1, print, max_cpu_seconds=-1)


def with_limits(job: Job, memory_bytes: int = 0, cpu_seconds: float = 0.0) -> Job:
    return dataclasses.replace(job, memory_limit_bytes=memory_bytes, cpu_limit_seconds=cpu_seconds)


@pytest.mark.parametrize("maximum", [0, 2 * GIB])
def test_a_tasks_own_memory_limit_applies_to_it_alone(maximum: int) -> None:
    async def scenario(rec: Recorder) -> None:
        async with rec.pool(max_memory_bytes=maximum) as pool:
            pool.submit(with_limits(make_job(pid_and_allocate, GIB), 256 * MIB))
            outcome = await rec.next()
            assert (outcome.status, outcome.cause) == (FAILED, MEMORY_LIMIT), outcome.message
            assert "memory limit of 256 MiB (its memory_limit_mb)" in outcome.message
            # The next task, without a limit of its own, has the maximum (or none) again.
            pool.submit(make_job(pid_and_allocate, 600 * MIB))
            first = completed_value(await rec.next())
            if maximum:  # a limit over the maximum gets the maximum
                pool.submit(with_limits(make_job(allocate, 5 * GIB), 64 * GIB))
                over = await rec.next()
                assert (over.status, over.cause) == (FAILED, MEMORY_LIMIT), over.message
                assert "memory limit of 2048 MiB (--max-task-memory-mb" in over.message
            pool.submit(make_job(os.getpid))
            assert completed_value(await rec.next()) == first  # one process all along

    run(scenario)


def test_a_tasks_own_cpu_limit_applies_to_it_alone() -> None:
    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:  # no maximum: only the task's own limit
            pool.submit(with_limits(make_job(spin, 60), cpu_seconds=1))
            outcome = await rec.next()
            assert (outcome.status, outcome.cause) == (FAILED, CPU_LIMIT), outcome.message
            assert "CPU time limit of 1 s (its cpu_limit_seconds)" in outcome.message
            await rec.replacement_ready()
            pool.submit(make_job(spin, 1.5))  # no limit of its own: runs past 1 s
            assert completed_value(await rec.next()) >= 1.5
            pool.submit(with_limits(make_job(spin, 0.3), cpu_seconds=5))
            assert completed_value(await rec.next()) >= 0.3

    run(scenario)
