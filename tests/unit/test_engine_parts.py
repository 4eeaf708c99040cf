"""The dispatcher's engine parts on their own (no Redis, no processes): liveness, adoption on a
reconnect, settling written starts, and which outcomes a session may report."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, cast

from faas.v1 import common_pb2, dispatcher_pb2
from faas.v1.dispatcher_pb2 import AssignmentBatch

from services.common.store import RunningAttempt, TaskStore
from services.dispatcher import liveness
from services.dispatcher.backoff import next_delay
from services.dispatcher.events import GatewayEvents
from services.dispatcher.loss import Loss
from services.dispatcher.outcomes import Outcomes
from services.dispatcher.recovery import Recovery
from services.dispatcher.scheduler import Scheduler, Session, Task
from services.dispatcher.settings import DispatcherSettings
from services.dispatcher.starts import Starts


class _NoStore:
    """A store that these steps must not reach."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used: {name}")


class _Link:
    def __init__(self) -> None:
        self.acknowledged: list[str] = []
        self.closed = False

    def deliver(self, batch: AssignmentBatch) -> None:
        raise AssertionError("nothing is delivered here")

    def acknowledge(self, attempt_ids: list[str]) -> None:
        self.acknowledged += attempt_ids

    def close(self) -> None:
        self.closed = True


class _Engine:
    """The parts wired as the Dispatcher wires them, with background steps collected."""

    def __init__(self, **settings: Any) -> None:
        self.settings = DispatcherSettings(mode="push", **settings)
        store = cast(TaskStore, _NoStore())
        self.scheduler = Scheduler("push")
        self.events = GatewayEvents()
        self.settling: set[str] = set()
        self.spawned: list[Awaitable[None]] = []
        self.woken = 0
        parts = (self.settings, store, self.scheduler)
        self.loss = Loss(*parts, self.events, self.settling, self.wake, lambda: False)
        self.recovery = Recovery(*parts, self.loss, self.settling, self.spawned.append, self.wake)
        self.starts = Starts(*parts, self.events, self.loss, self.settling, self.wake)
        self.outcomes = Outcomes(
            *parts,
            self.events,
            self.loss,
            self.recovery,
            self.settling,
            self.spawned.append,
            self.wake,
        )

    def wake(self) -> None:
        self.woken += 1

    def close_spawned(self) -> int:
        count = len(self.spawned)
        for step in self.spawned:
            cast(Coroutine[Any, Any, None], step).close()
        self.spawned.clear()
        return count

    async def run_spawned(self) -> int:
        count = len(self.spawned)
        for step in self.spawned:
            await step
        self.spawned.clear()
        return count


def _session(worker_id: str = "w", capacity: int = 2) -> Session:
    return Session(worker_id, "host", 1, capacity, "push", link=_Link())


def _held(session: Session, attempt_id: str, task: Task, now: float = 0.0) -> None:
    session.reserved += 1
    session.hold(attempt_id, task, now)


def test_a_timed_attempt_past_its_deadline_fails_timeout() -> None:
    session = _session()
    timed, untimed = Task("t1", "f", b"", 2.0), Task("t2", "f", b"", None)
    _held(session, "a1", timed)
    _held(session, "a2", untimed)
    liveness.set_deadline(session, "a1", timed, grace=1.0, start=10.0)
    liveness.set_deadline(session, "a2", untimed, grace=1.0, start=10.0)
    assert session.deadlines == {"a1": 13.0}  # an untimed task has none
    assert liveness.expire_overdue(session, 12.9, grace=1.0) == ([], set())
    expired, unstarted = liveness.expire_overdue(session, 13.0, grace=1.0)
    assert [(o.task_id, o.attempt_id) for o in expired] == [("t1", "a1")]
    assert expired[0].status == common_pb2.TASK_STATUS_FAILED
    assert expired[0].error.cause == common_pb2.FAILURE_CAUSE_TIMEOUT
    assert "time limit of 2 s plus a grace of 1 s" in expired[0].error.message
    assert unstarted == {"a1"}  # its start was never reported
    assert list(session.in_flight) == ["a2"] and session.failed == 1


def test_a_local_session_has_no_deadlines() -> None:
    session = _session()
    session.remote = False
    task = Task("t1", "f", b"", 2.0)
    _held(session, "a1", task)
    liveness.set_deadline(session, "a1", task, grace=1.0, start=0.0)
    assert session.deadlines == {}


def test_prefetched_attempts_are_taken_back_after_a_grace_with_a_process_free() -> None:
    session = _session(capacity=2)
    for i in range(3):
        _held(session, f"a{i}", Task(f"t{i}", "f", b"", None))
    session.unstarted.pop("a0")  # a0 runs: one process is free while a1 and a2 wait
    assert liveness.take_stalled(session, 100.0, grace=5.0) == []  # first seen stalled
    assert liveness.take_stalled(session, 104.9, grace=5.0) == []
    assert liveness.take_stalled(session, 105.0, grace=5.0) == ["a1", "a2"]
    assert session.stalled_since is None


def test_a_busy_worker_is_not_stalled() -> None:
    session = _session(capacity=1)
    _held(session, "a0", Task("t0", "f", b"", None))
    _held(session, "a1", Task("t1", "f", b"", None))
    session.unstarted.pop("a0")  # its one process runs a0, a1 waits for it
    session.stalled_since = 1.0
    assert liveness.take_stalled(session, 100.0, grace=5.0) == []
    assert session.stalled_since is None


def test_backoff_doubles_up_to_two_seconds() -> None:
    delays = [0.1]
    for _ in range(6):
        delays.append(next_delay(delays[-1]))
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


def test_a_reconnecting_worker_keeps_the_attempts_it_still_runs() -> None:
    engine = _Engine()
    old = _session()
    engine.recovery.attach(old, [])
    kept, gone, starting = (Task(f"t{i}", "f", b"", 5.0) for i in range(3))
    for attempt_id, task in (("a1", kept), ("a2", gone), ("a3", starting)):
        _held(old, attempt_id, task)
    old.unstarted.pop("a1")  # started; a3's start is being written
    old.starting.add("a3")
    old.deadlines["a1"] = 50.0
    new = _session()
    assert engine.recovery.attach(new, ["a1", "a3"]) == []  # nothing to adopt from Redis
    assert cast(_Link, old.link).closed
    assert new.in_flight == {"a1": kept, "a3": starting}
    assert new.deadlines == {"a1": 50.0}
    assert list(new.unstarted) == ["a3"] and new.starting == {"a3"}
    assert engine.scheduler.sessions["w"] is new
    assert engine.close_spawned() == 1  # the old session is lost (its a2 goes back)


def test_a_session_may_report_only_what_it_holds_or_its_own_orphans() -> None:
    engine = _Engine()
    session = _session("w1")
    engine.recovery.attach(session, [])
    engine.recovery.orphans = {
        "t8": RunningAttempt("a8", "w1"),
        "t9": RunningAttempt("a9", "w2"),
    }
    task = Task("t1", "f", b"", None)
    _held(session, "a1", task)

    def outcome(task_id: str, attempt_id: str) -> dispatcher_pb2.TaskOutcome:
        return dispatcher_pb2.TaskOutcome(
            task_id=task_id, attempt_id=attempt_id, status=common_pb2.TASK_STATUS_COMPLETED
        )

    assert engine.outcomes.may_report(session, outcome("t1", "a1"))
    assert engine.outcomes.may_report(session, outcome("t8", "a8"))  # its own orphan
    assert not engine.outcomes.may_report(session, outcome("t9", "a9"))  # another worker's
    assert not engine.outcomes.may_report(session, outcome("t8", "old"))  # superseded
    engine.outcomes.report(session, [outcome("t1", "a1"), outcome("t9", "a9")])
    assert cast(_Link, session.link).acknowledged == ["a9"]  # refused at once, never stored
    assert session.in_flight == {} and session.completed == 1
    assert engine.settling == {"a1"}  # its write is under way
    assert engine.close_spawned() == 1


def test_process_deaths_are_retried_only_when_configured() -> None:
    died = dispatcher_pb2.TaskOutcome(
        status=common_pb2.TASK_STATUS_FAILED,
        error=common_pb2.TaskError(cause=common_pb2.FAILURE_CAUSE_PROCESS_DIED),
    )
    timeout = dispatcher_pb2.TaskOutcome(
        status=common_pb2.TASK_STATUS_FAILED,
        error=common_pb2.TaskError(cause=common_pb2.FAILURE_CAUSE_TIMEOUT),
    )
    assert _Engine(retry_process_death=True).outcomes.retries(died)
    assert not _Engine(retry_process_death=True).outcomes.retries(timeout)
    assert not _Engine(retry_process_death=False).outcomes.retries(died)


def test_a_start_written_after_its_session_ended_is_stranded_unless_kept() -> None:
    async def scenario() -> None:  # emitting events needs a running loop
        engine = _Engine()
        old = _session()
        engine.recovery.attach(old, [])
        tasks = [Task(f"t{i}", "f", b"", None) for i in range(4)]
        for i, task in enumerate(tasks):
            _held(old, f"a{i}", task)
        engine.starts.started(old, ["a0", "a1", "a2", "a3", "unknown"])
        assert old.starting == {"a0", "a1", "a2", "a3"}
        assert engine.settling == {"a0", "a1", "a2", "a3"}
        new = _session()
        engine.recovery.attach(new, ["a0"])  # the worker came back still running a0
        assert await engine.run_spawned() == 1  # the old session is lost: all it held starts
        assert old.closed and not old.in_flight
        for task in tasks:
            engine.scheduler.tasks[task.task_id] = task
        items = [(old, f"a{i}", task) for i, task in enumerate(tasks)]
        stranded = engine.starts._settle(items, [True, True, False, True])
        # a0 is the new session's and RUNNING; a1 and a3 are RUNNING and nobody's; a2 moved on.
        assert stranded == [("a1", tasks[1]), ("a3", tasks[3])]
        assert list(new.in_flight) == ["a0"] and not new.unstarted and not new.starting
        assert "t2" not in engine.scheduler.tasks

    asyncio.run(scenario())
