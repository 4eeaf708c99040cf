"""Pull mode's credits: the worker asks ahead of its processes, never twice for the same room."""

from __future__ import annotations

import pytest

from services.dispatcher.scheduler import Scheduler, Session, Task
from services.worker.credits import PREFETCH_HORIZON_SECONDS, Credits


def test_asks_for_its_processes_and_as_many_again_before_any_rate() -> None:
    credits = Credits(processes=2, max_prefetch=128, max_unanswered=8, now=0.0)
    assert credits.ask(held=0) == 4  # 2 processes + a prefetch of 2 until a rate is measured
    assert credits.ask(held=0) == 0  # unanswered credits count: nothing more to ask
    credits.received(4)
    assert credits.ask(held=4) == 0  # it holds what it wants
    assert credits.ask(held=1) == 3  # three ended: it asks for three
    assert credits.unanswered == 3


def test_never_more_unanswered_than_allowed() -> None:
    credits = Credits(processes=2, max_prefetch=128, max_unanswered=2, now=0.0)
    credits.drained(1000, 1.0)  # 1,000 tasks/s: it wants 100 more than its processes
    assert credits.wanted() == 2 + round(1000 * PREFETCH_HORIZON_SECONDS)
    assert credits.ask(held=0) == 2
    assert credits.ask(held=0) == 0
    credits.received(1)
    assert credits.ask(held=1) == 1
    credits.received(2)
    assert credits.ask(held=3) == 2


def test_the_prefetch_follows_the_drain_rate_within_its_bound() -> None:
    credits = Credits(processes=2, max_prefetch=50, max_unanswered=2, now=0.0)
    credits.drained(100, 0.1)  # a window is 0.2 s at least: not measured yet
    assert credits.prefetch == 2
    credits.drained(100, 0.5)  # 200 in 0.5 s: 400/s
    assert credits.prefetch == round(400 * PREFETCH_HORIZON_SECONDS)
    credits.drained(0, 1.5)  # smoothed: half the rate
    assert credits.prefetch == round(200 * PREFETCH_HORIZON_SECONDS)
    credits.drained(10**6, 2.5)
    assert credits.prefetch == 50  # bounded
    for second in range(3, 40):  # idle: it falls to one beyond its processes (rounded up)
        credits.drained(0, float(second))
    assert credits.prefetch == 1
    assert credits.wanted() == 3


def test_no_prefetch_asks_only_for_the_processes() -> None:
    credits = Credits(processes=3, max_prefetch=0, max_unanswered=3, now=0.0)
    credits.drained(10**6, 1.0)
    assert credits.ask(held=1) == 2
    credits.received(2)
    assert credits.ask(held=3) == 0


def test_a_new_session_starts_with_no_credit() -> None:
    credits = Credits(processes=2, max_prefetch=8, max_unanswered=2, now=0.0)
    assert credits.ask(held=0) == 2
    credits.connected(0)  # the dispatcher dropped the ended session's credits
    assert credits.unanswered == 0
    assert credits.ask(held=1) == 2
    credits.connected(6)  # a dispatcher that keeps more: it asks for more at once
    assert credits.ask(held=0) == 4  # what it wants: 2 processes + 2
    credits.received(5)  # more than asked (never expected): no negative count
    assert credits.unanswered == 0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        Credits(processes=0, max_prefetch=1, max_unanswered=1, now=0.0)
    with pytest.raises(ValueError):
        Credits(processes=1, max_prefetch=1, max_unanswered=0, now=0.0)


def test_the_dispatcher_keeps_every_credit_asked_for() -> None:
    """Against the dispatcher's scheduler (processes + --prefetch 0 kept at most): what the
    worker counts as unanswered is what the dispatcher holds for it, through bursts, an empty
    queue and a drain rate that wants far more than its processes."""
    scheduler = Scheduler("pull")
    session = Session("w", "host", 1, 2, "pull", prefetch=0)
    scheduler.attach(session)
    credits = Credits(processes=2, max_prefetch=128, max_unanswered=2, now=0.0)
    held: list[Task] = []
    queued = 0
    now = 0.0
    for turn in range(400):
        now += 0.005
        if turn % 50 < 30:  # bursts of tasks, then an empty queue
            for _ in range(3):
                scheduler.add(Task(f"t{queued}", "f", b"", None))
                queued += 1
        scheduler.grant(session, credits.ask(len(held)))
        assert session.credits == credits.unanswered
        planned = scheduler.plan()
        session.reserved -= len(planned)
        credits.received(len(planned))
        held.extend(task for _, task in planned)
        assert session.credits == credits.unanswered
        assert len(held) + credits.unanswered <= credits.wanted()
        done, held = held[:2], held[2:]  # the two processes finish one task each per turn
        for task in done:
            scheduler.forget(task.task_id)
        credits.drained(len(done), now)
    assert credits.wanted() > 2  # it did ask ahead of its processes
