"""A pool with ``queue_depth`` > 1: each process holds several jobs, runs them in order and
sends their outcomes back in chunks, and every per-job guarantee of depth 1 still holds.

Real child processes, no network. Nothing here asserts how fast anything is: a test that must
know that a job has started or finished waits on the pool's own callbacks or on a file.
"""

from __future__ import annotations

import asyncio
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dill
import pytest
from faas.v1 import common_pb2

from services.common.pool import Outcome, ProcessPool
from tests.unit.test_pool import (
    FAILED,
    WAIT,
    Recorder,
    completed_value,
    make_job,
    no_leftover_children,
)
from tests.unit.test_pool_isolation import fork_sleeper, gone, strays, until_gone

__all__ = ["no_leftover_children", "strays"]  # fixtures, used by name

PROCESS_DIED = common_pb2.FAILURE_CAUSE_PROCESS_DIED
TIMEOUT = common_pb2.FAILURE_CAUSE_TIMEOUT


class Events(Recorder):
    """Also records starts, and the order of starts and outcomes per attempt."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str]] = []
        self.started: dict[str, asyncio.Event] = {}

    def on_outcome(self, outcome: Outcome) -> None:
        self.log.append(("done", outcome.attempt_id))
        super().on_outcome(outcome)

    def on_started(self, attempt_ids: list[str]) -> None:
        assert isinstance(attempt_ids, list) and attempt_ids
        for attempt_id in attempt_ids:
            self.log.append(("start", attempt_id))
            self.started.setdefault(attempt_id, asyncio.Event()).set()

    def pool(self, size: int = 1, **options: Any) -> ProcessPool:
        options.setdefault("queue_depth", 4)
        return ProcessPool(
            size,
            self.on_outcome,
            on_slot_ready=self.on_slot_ready,
            on_started=self.on_started,
            **options,
        )

    async def until_started(self, attempt_id: str) -> None:
        event = self.started.setdefault(attempt_id, asyncio.Event())
        await asyncio.wait_for(event.wait(), WAIT)

    async def all(self, count: int) -> dict[str, Outcome]:
        outcomes = [await self.next() for _ in range(count)]
        by_id = {outcome.attempt_id: outcome for outcome in outcomes}
        assert len(by_id) == count, "an attempt was reported twice"
        return by_id

    def check_log(self, attempt_ids: list[str], started: set[str] | None = None) -> None:
        """Each attempt started (unless not in ``started``) exactly once, before its one outcome."""
        started = set(attempt_ids) if started is None else started
        for attempt_id in attempt_ids:
            entries = [kind for kind, which in self.log if which == attempt_id]
            expected = ["start", "done"] if attempt_id in started else ["done"]
            assert entries == expected, (attempt_id, entries)


def run_events(scenario: Callable[[Events], Any]) -> None:
    async def main() -> None:
        await scenario(Events())

    asyncio.run(main())


def wait_for_file(path: str, *_: object) -> int:
    """Block until ``path`` exists (the test creates it), then return this process's pid."""
    import os
    import time

    while not os.path.exists(path):
        time.sleep(0.01)
    return os.getpid()


def test_a_burst_runs_in_order_and_every_job_reports_once() -> None:
    def stamp(n: int) -> tuple[int, int, int]:
        import os
        import time

        return n, os.getpid(), time.monotonic_ns()

    async def scenario(rec: Events) -> None:
        async with rec.pool(2, queue_depth=8) as pool:
            assert (pool.free_slots, pool.accepting, pool.queue_depth) == (2, 16, 8)
            jobs = [make_job(stamp, n, function_id="stamp") for n in range(16)]
            for job in jobs:
                pool.submit(job)
            assert (pool.free_slots, pool.accepting) == (0, 0)
            with pytest.raises(RuntimeError, match="no idle worker process"):
                pool.submit(make_job(abs, 1))
            outcomes = await rec.all(16)
            values = [completed_value(outcomes[job.attempt_id]) for job in jobs]
            pids = {pid for _, pid, _ in values}
            assert len(pids) == 2  # the fewest queued jobs first: 8 each
            for pid in pids:
                mine = [(n, at) for n, p, at in values if p == pid]
                assert len(mine) == 8
                assert mine == sorted(mine, key=lambda item: item[1])  # run in submission order
            rec.check_log([job.attempt_id for job in jobs])
            assert (pool.free_slots, pool.accepting, pool.running_attempts()) == (2, 16, [])
            assert await pool.wait_idle(0)

    run_events(scenario)


def test_depth_one_is_the_default_and_depth_is_checked() -> None:
    assert ProcessPool(1, print).queue_depth == 1
    with pytest.raises(ValueError, match="queue_depth"):
        ProcessPool(1, print, queue_depth=0)


def test_accepting_free_slots_and_balance(tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")

    async def scenario(rec: Events) -> None:
        async with rec.pool(2, queue_depth=3) as pool:
            first = make_job(wait_for_file, gate)
            pool.submit(first)
            assert (pool.free_slots, pool.accepting) == (1, 5)
            # The next goes to the idle process, then they alternate (fewest queued first).
            rest = [make_job(wait_for_file, gate) for _ in range(5)]
            for job in rest:
                pool.submit(job)
            assert (pool.free_slots, pool.accepting) == (0, 0)
            assert sorted(pool.queued_attempts()) == sorted(job.attempt_id for job in rest[1:])
            await rec.until_started(rest[0].attempt_id)
            open(gate, "w").close()
            outcomes = await rec.all(6)
            pids = [completed_value(outcomes[job.attempt_id]) for job in [first, *rest]]
            assert pids[0] != pids[1]
            assert sorted(pids) == sorted([pids[0]] * 3 + [pids[1]] * 3)
            assert pool.queued_attempts() == []

    run_events(scenario)


def test_a_queued_job_goes_where_its_function_is_loaded(tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")

    async def scenario(rec: Events) -> None:
        async with rec.pool(2, queue_depth=2) as pool:
            a = make_job(wait_for_file, gate, function_id="wait")
            b = make_job(os.getpid, function_id="pid")
            pool.submit(a)
            pool.submit(b)
            # Both hold one job; the next job of "wait" goes to the process that loaded it.
            c = make_job(wait_for_file, gate, function_id="wait")
            pool.submit(c)
            open(gate, "w").close()
            outcomes = await rec.all(3)
            assert completed_value(outcomes[a.attempt_id]) == completed_value(
                outcomes[c.attempt_id]
            )
            assert completed_value(outcomes[b.attempt_id]) != completed_value(
                outcomes[a.attempt_id]
            )

    run_events(scenario)


def test_a_start_is_reported_while_the_job_runs(tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")

    async def scenario(rec: Events) -> None:
        async with rec.pool(1, queue_depth=3) as pool:
            quick = make_job(abs, -1)
            slow = make_job(wait_for_file, gate)
            after = make_job(abs, -2)
            for job in (quick, slow, after):
                pool.submit(job)
            assert pool.queued_attempts() == [slow.attempt_id, after.attempt_id]
            # The quick job's outcome and the slow job's start arrive while the slow one runs.
            await rec.until_started(slow.attempt_id)
            assert completed_value(await rec.next()) == 1
            assert rec.outcomes.empty()
            assert pool.queued_attempts() == [after.attempt_id]
            open(gate, "w").close()
            outcomes = await rec.all(2)
            assert completed_value(outcomes[after.attempt_id]) == 2
            rec.check_log([quick.attempt_id, slow.attempt_id, after.attempt_id])
            order = [entry for entry in rec.log if entry[1] in (quick.attempt_id, slow.attempt_id)]
            assert order.index(("done", quick.attempt_id)) < order.index(("start", slow.attempt_id))

    run_events(scenario)


def test_a_death_fails_only_the_running_job_and_the_queued_ones_run_elsewhere() -> None:
    def die() -> None:
        import os

        os._exit(5)

    async def scenario(rec: Events) -> None:
        async with rec.pool(1, queue_depth=4) as pool:
            before = make_job(os.getpid)
            dying = make_job(die)
            queued = [make_job(os.getpid) for _ in range(2)]
            for job in (before, dying, *queued):
                pool.submit(job)
            outcomes = await rec.all(4)
            first_pid = completed_value(outcomes[before.attempt_id])  # finished, not lost
            died = outcomes[dying.attempt_id]
            assert (died.status, died.cause) == (FAILED, PROCESS_DIED)
            assert "exit code 5" in died.message
            later = {completed_value(outcomes[job.attempt_id]) for job in queued}
            assert len(later) == 1 and first_pid not in later  # on the replacement
            rec.check_log([job.attempt_id for job in (before, dying, *queued)])
            assert pool.running_attempts() == []

    run_events(scenario)


def test_a_dead_process_s_queued_jobs_go_to_the_other_process(tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")

    def die_at(path: str) -> None:
        import os
        import time

        while not os.path.exists(path):
            time.sleep(0.01)
        os._exit(6)

    async def scenario(rec: Events) -> None:
        async with rec.pool(2, queue_depth=3) as pool:
            dying = make_job(die_at, gate)
            other = make_job(os.getpid)
            pool.submit(dying)
            pool.submit(other)
            other_pid = completed_value(await rec.next())
            queued = [make_job(os.getpid) for _ in range(2)]
            for job in queued:  # the other process is idle: the first goes there, then one each
                pool.submit(job)
            behind = make_job(os.getpid)
            pool.submit(behind)
            await rec.until_started(dying.attempt_id)
            open(gate, "w").close()
            outcomes = await rec.all(4)
            assert outcomes[dying.attempt_id].cause == PROCESS_DIED
            for job in (*queued, behind):
                assert completed_value(outcomes[job.attempt_id]) > 0
            assert completed_value(outcomes[queued[0].attempt_id]) == other_pid
            await rec.replacement_ready()
            assert pool.free_slots == 2

    run_events(scenario)


def test_a_timeout_counts_from_the_job_s_start_and_requeues_what_waits(tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")

    def overrun() -> None:
        import time

        time.sleep(300)

    async def scenario(rec: Events) -> None:
        async with rec.pool(1, queue_depth=4) as pool:
            long = make_job(wait_for_file, gate)
            # Queued behind ``long`` for longer than its limit; it must not count that wait.
            patient = make_job(abs, -3, timeout=1.0)
            hung = make_job(overrun, timeout=0.5)
            queued = make_job(abs, -4, timeout=5.0)
            for job in (long, patient, hung, queued):
                pool.submit(job)
            await asyncio.sleep(1.5)  # longer than patient's limit, while it waits
            assert rec.outcomes.empty()
            open(gate, "w").close()
            outcomes = await rec.all(4)
            completed_value(outcomes[long.attempt_id])
            assert completed_value(outcomes[patient.attempt_id]) == 3
            timed_out = outcomes[hung.attempt_id]
            assert (timed_out.status, timed_out.cause) == (FAILED, TIMEOUT)
            assert timed_out.message == "task exceeded its time limit of 0.5 s"
            assert isinstance(pickle.loads(timed_out.result), TimeoutError)
            assert completed_value(outcomes[queued.attempt_id]) == 4
            rec.check_log([job.attempt_id for job in (long, patient, hung, queued)])

    run_events(scenario)


def test_output_is_captured_per_queued_job() -> None:
    def say(word: str) -> None:
        import os
        import sys

        print(word)
        sys.stderr.write(word.upper() + "\n")
        os.write(1, b"raw-" + word.encode() + b"\n")

    def say_and_die() -> None:
        import os

        print("last words", flush=True)
        os._exit(1)

    async def scenario(rec: Events) -> None:
        async with rec.pool(1, queue_depth=8) as pool:
            jobs = [make_job(say, word) for word in ("one", "two", "three")]
            silent = make_job(abs, 1)
            dying = make_job(say_and_die)
            after = make_job(say, "after")
            for job in (*jobs, silent, dying, after):
                pool.submit(job)
            outcomes = await rec.all(6)
            for job, word in zip(jobs, ("one", "two", "three"), strict=True):
                lines = outcomes[job.attempt_id].output.splitlines()
                assert sorted(lines) == sorted([word, word.upper(), f"raw-{word}"])
            assert outcomes[silent.attempt_id].output == ""
            assert outcomes[dying.attempt_id].cause == PROCESS_DIED
            assert outcomes[dying.attempt_id].output == "last words\n"
            assert sorted(outcomes[after.attempt_id].output.splitlines()) == [
                "AFTER",
                "after",
                "raw-after",
            ]

    run_events(scenario)


def test_output_is_bounded_per_queued_job() -> None:
    def flood(n: int) -> int:
        import sys

        sys.stdout.write("x" * n)
        return n

    async def scenario(rec: Events) -> None:
        async with rec.pool(1, queue_depth=4, max_output_bytes=100) as pool:
            jobs = [make_job(flood, n) for n in (50, 300_000, 7)]
            for job in jobs:
                pool.submit(job)
            outcomes = await rec.all(3)
            assert outcomes[jobs[0].attempt_id].output == "x" * 50
            kept, _, marker = outcomes[jobs[1].attempt_id].output.partition("\n[output truncated")
            assert kept == "x" * 100
            assert f"{300_000 - 100} more bytes" in marker
            assert outcomes[jobs[2].attempt_id].output == "x" * 7

    run_events(scenario)


def test_result_limits_and_large_frames_with_queued_jobs() -> None:
    def make(n: int) -> bytes:
        return b"r" * n

    async def scenario(rec: Events) -> None:
        async with rec.pool(1, queue_depth=8, max_result_bytes=5 << 20) as pool:
            big_args = os.urandom(3 << 20)
            sizes = [10, 200_000, 6 << 20, 300_000, 3 << 20, 70_000, 1]
            jobs = [make_job(make, n) for n in sizes]
            jobs.insert(2, make_job(len, big_args))
            for job in jobs:
                pool.submit(job)
            outcomes = await rec.all(len(jobs))
            assert completed_value(outcomes[jobs[2].attempt_id]) == len(big_args)
            for job, n in zip([*jobs[:2], *jobs[3:]], sizes, strict=True):
                outcome = outcomes[job.attempt_id]
                if n > 5 << 20:
                    assert outcome.cause == common_pb2.FAILURE_CAUSE_RESULT_TOO_LARGE
                else:
                    assert completed_value(outcome) == b"r" * n

    run_events(scenario)


def test_queued_jobs_of_a_function_that_cannot_load_fail_with_its_reason() -> None:
    async def scenario(rec: Events) -> None:
        async with rec.pool(1, queue_depth=4) as pool:
            bad = dill.dumps(42)
            jobs = [make_job(None, function_id="bad", function_payload=bad) for _ in range(3)]
            for job in jobs:
                pool.submit(job)
            outcomes = await rec.all(3)
            for job in jobs:
                outcome = outcomes[job.attempt_id]
                assert outcome.cause == common_pb2.FAILURE_CAUSE_BAD_PAYLOAD
                assert "not a callable" in outcome.message
            pool.submit(make_job(abs, -9, function_id="bad"))  # a good payload loads again
            assert completed_value(await rec.next()) == 9

    run_events(scenario)


def test_a_grandchild_does_not_hide_a_death_with_jobs_queued(strays: list[int]) -> None:
    def fork_and_die() -> None:
        import os
        import time

        if os.fork() == 0:
            time.sleep(300)
            os._exit(0)
        os._exit(3)

    async def scenario(rec: Events) -> None:
        async with rec.pool(1, queue_depth=3) as pool:
            forked = make_job(fork_sleeper)
            dying = make_job(fork_and_die)
            after = make_job(os.getpid)
            for job in (forked, dying, after):
                pool.submit(job)
            outcomes = await rec.all(3)
            grandchild = completed_value(outcomes[forked.attempt_id])
            strays.append(grandchild)
            assert outcomes[dying.attempt_id].cause == PROCESS_DIED
            assert completed_value(outcomes[after.attempt_id]) > 0
            await until_gone(grandchild)  # killed with the dead process's group

    run_events(scenario)


def test_close_drops_queued_jobs_and_leaves_no_processes(tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")

    async def scenario(rec: Events) -> None:
        pool = rec.pool(2, queue_depth=3)
        await pool.start()
        first = make_job(os.getpid)
        pool.submit(first)
        pid = completed_value(await rec.next())
        for n in range(6):
            # Big arguments: the frames to the busy processes block on a thread, unread.
            pool.submit(make_job(wait_for_file, gate, os.urandom(300_000 * n)))
        assert pool.accepting == 0
        assert not await pool.wait_idle(0.05)
        await asyncio.wait_for(pool.close(), WAIT)
        assert rec.outcomes.empty()
        assert pool.running_attempts() == []
        assert gone(pid)

    run_events(scenario)


def test_frames_to_a_busy_process_keep_their_order(tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")

    async def scenario(rec: Events) -> None:
        async with rec.pool(1, queue_depth=6) as pool:
            first = make_job(wait_for_file, gate)
            pool.submit(first)
            await rec.until_started(first.attempt_id)
            # One frame per loop turn; past the first, they do not fit in the pipe beside the
            # ones the busy process has not read, so they are written off the loop, in order.
            jobs = []
            for n in range(5):
                job = make_job(len, os.urandom(100_000 + n), function_id="len")
                jobs.append(job)
                pool.submit(job)
                await asyncio.sleep(0)
            open(gate, "w").close()
            outcomes = [await rec.next() for _ in range(6)]
            assert [o.attempt_id for o in outcomes] == [first.attempt_id] + [
                job.attempt_id for job in jobs
            ]
            assert [completed_value(o) for o in outcomes[1:]] == [100_000 + n for n in range(5)]

    run_events(scenario)


def test_on_started_at_depth_one() -> None:
    async def scenario(rec: Events) -> None:
        async with rec.pool(2, queue_depth=1) as pool:
            jobs = [make_job(abs, -n) for n in range(2)]
            for job in jobs:
                pool.submit(job)
            await rec.all(2)
            rec.check_log([job.attempt_id for job in jobs])

    run_events(scenario)


def test_the_pool_process_s_helper_thread_does_not_reach_user_code() -> None:
    def threads() -> int:
        import threading

        return threading.active_count()

    async def scenario(rec: Events) -> None:
        async with rec.pool(1, queue_depth=1) as pool:
            pool.submit(make_job(threads))
            assert completed_value(await rec.next()) == 1  # depth 1: no helper thread at all

    run_events(scenario)
