"""Scheduler: who gets which task in push and pull modes (pure logic, no I/O)."""

from __future__ import annotations

from collections import Counter

from services.dispatcher.scheduler import Scheduler, Session, Task


def _task(i: int) -> Task:
    return Task(f"t{i}", "f", b"", None)


def _session(name: str, capacity: int, mode: str = "push", prefetch: int = 0) -> Session:
    return Session(name, "host", 1, capacity, mode, prefetch=prefetch)


def _run(scheduler: Scheduler, rounds: int) -> Counter[str]:
    """Plans, then finishes everything planned, ``rounds`` times; counts tasks per worker."""
    counts: Counter[str] = Counter()
    for _ in range(rounds):
        for session, task in scheduler.plan():
            session.reserved -= 1
            counts[session.worker_id] += 1
            scheduler.forget(task.task_id)
    return counts


def test_push_never_exceeds_capacity_plus_prefetch() -> None:
    scheduler = Scheduler("push")
    a, b = _session("a", 2), _session("b", 1, prefetch=1)
    scheduler.attach(a)
    scheduler.attach(b)
    for i in range(10):
        scheduler.add(_task(i))
    plan = scheduler.plan()
    assert Counter(s.worker_id for s, _ in plan) == {"a": 2, "b": 2}
    assert scheduler.queued_count() == 6
    assert scheduler.plan() == []


def test_push_prefers_the_least_loaded_relative_to_capacity() -> None:
    scheduler = Scheduler("push")
    small, big = _session("small", 1), _session("big", 3)
    scheduler.attach(small)
    scheduler.attach(big)
    for i in range(4):
        scheduler.add(_task(i))
    assert Counter(s.worker_id for s, _ in scheduler.plan()) == {"small": 1, "big": 3}


def test_push_ties_go_round_robin() -> None:
    scheduler = Scheduler("push")
    sessions = [_session(name, 1) for name in "abcd"]
    for s in sessions:
        scheduler.attach(s)
    for i in range(400):
        scheduler.add(_task(i))
    counts = _run(scheduler, 100)
    assert counts == {"a": 100, "b": 100, "c": 100, "d": 100}


def test_pull_gives_only_what_was_asked_oldest_request_first() -> None:
    scheduler = Scheduler("pull")
    a, b = _session("a", 4, "pull"), _session("b", 4, "pull")
    scheduler.attach(a)
    scheduler.attach(b)
    for i in range(5):
        scheduler.add(_task(i))
    assert scheduler.plan() == []  # nobody asked
    scheduler.grant(b, 2)
    scheduler.grant(a, 1)
    plan = scheduler.plan()
    assert [s.worker_id for s, _ in plan] == ["b", "b", "a"]
    assert [t.task_id for _, t in plan] == ["t0", "t1", "t2"]
    assert a.credits == b.credits == 0


def test_draining_and_closed_sessions_get_nothing() -> None:
    scheduler = Scheduler("push")
    a = _session("a", 2)
    scheduler.attach(a)
    a.draining = True
    scheduler.add(_task(1))
    assert scheduler.plan() == []
    scheduler.detach(a)
    assert a.closed and "a" not in scheduler.sessions


def test_add_is_idempotent_and_requeue_goes_first() -> None:
    scheduler = Scheduler("push")
    assert scheduler.add(_task(1))
    assert not scheduler.add(_task(1))
    scheduler.add(_task(2))
    scheduler.requeue(_task(3))
    assert [t.task_id for t in scheduler.queue] == ["t3", "t1", "t2"]
