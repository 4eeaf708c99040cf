"""Scheduler: who gets which task in push and pull modes (pure logic, no I/O)."""

from __future__ import annotations

from collections import Counter

import pytest
from faas.v1 import common_pb2

from services.dispatcher.placement import Needs, Offer, unmet
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
    a, b = _session("a", 2), _session("b", 1, prefetch=3)
    scheduler.attach(a)
    scheduler.attach(b)
    for i in range(20):
        scheduler.add(_task(i))
    plan = scheduler.plan()
    # Before any drain rate is known, each may prefetch as many as its processes, or --prefetch.
    assert Counter(s.worker_id for s, _ in plan) == {"a": 4, "b": 4}
    assert scheduler.queued_count() == 12
    assert scheduler.plan() == []


def test_the_prefetch_follows_the_drain_rate_within_bounds() -> None:
    from services.dispatcher.scheduler import MAX_PREFETCH_PER_PROCESS, PREFETCH_HORIZON_SECONDS

    session = _session("a", 2, prefetch=1)
    start = session._window_start
    session.drained(1000, start + 1.0)  # 1,000 outcomes/s
    assert session.prefetched() == round(1000 * PREFETCH_HORIZON_SECONDS)
    assert session.available() == 2 + session.prefetched()
    session.drained(0, start + 2.0)  # smoothed: half the rate
    assert session.prefetched() == round(500 * PREFETCH_HORIZON_SECONDS)
    for step in range(3, 40):  # idle: it falls to the --prefetch floor
        session.retarget(start + step)
    assert session.prefetched() == 1
    session.drained(10**7, start + 41.0)  # bounded per process
    assert session.prefetched() == 2 * MAX_PREFETCH_PER_PROCESS
    session.retarget(start + 41.1)  # within a window: unchanged
    assert session.prefetched() == 2 * MAX_PREFETCH_PER_PROCESS


def test_prefetched_attempts_wait_until_started_and_count_as_held() -> None:
    session = _session("a", 2)
    task = _task(1)
    for attempt in ("x", "y", "z"):
        session.in_flight[attempt] = task
        session.unstarted[attempt] = 0.0
    del session.unstarted["x"]  # started and recorded
    session.starting.add("y")  # started, its write under way
    assert session.waiting() == ["z"]
    assert session.busy() == 2
    assert session.load() == 1.5


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


def test_pull_gives_only_what_was_asked_least_loaded_then_oldest_request_first() -> None:
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
    # Equal loads: b asked first; then a holds less; then only b has credit left.
    assert [s.worker_id for s, _ in plan] == ["b", "a", "b"]
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
    assert [t.task_id for t in scheduler.queued()] == ["t3", "t1", "t2"]


# Placement: labels, resources and Python


def _runtime(version: str) -> common_pb2.Runtime:
    return common_pb2.Runtime(python_version=version)


def _needs(
    labels: dict[str, str] | None = None,
    resources: dict[str, float] | None = None,
    python: str = "",
    any_python: bool = False,
) -> Needs:
    placement = common_pb2.Placement(
        labels=labels or {}, resources=resources or {}, any_python=any_python
    )
    return Needs.of(placement, _runtime(python) if python else None)


def _worker(
    name: str,
    capacity: int = 1,
    *,
    labels: dict[str, str] | None = None,
    resources: dict[str, float] | None = None,
    python: str = "3.11.7",
    mode: str = "push",
) -> Session:
    session = Session(
        name,
        "host",
        1,
        capacity,
        mode,
        runtime=_runtime(python),
        labels=labels or {},
        resources=resources or {},
    )
    session.target = 0  # no prefetch: a worker is busy once its processes are
    return session


def _needing(i: int, needs: Needs) -> Task:
    return Task(f"t{i}", "f", b"", None, needs)


@pytest.mark.parametrize(
    ("needs", "offer", "fits"),
    [
        (_needs(), Offer({}, {}, ""), True),
        (_needs({"gpu": "h200"}), Offer({"gpu": "h200", "zone": "a"}, {}, "3.11"), True),
        (_needs({"gpu": "h200"}), Offer({"gpu": "a100"}, {}, "3.11"), False),
        (_needs({"gpu": "h200"}), Offer({}, {}, "3.11"), False),
        (_needs(resources={"gpu": 1}), Offer({}, {"gpu": 2.0}, "3.11"), True),
        (_needs(resources={"gpu": 2}), Offer({}, {"gpu": 2.0}, "3.11"), True),
        (_needs(resources={"gpu": 2.5}), Offer({}, {"gpu": 2.0}, "3.11"), False),
        (_needs(resources={"gpu": 1}), Offer({}, {}, "3.11"), False),
        (_needs(python="3.11.2"), Offer({}, {}, "3.11"), True),
        (_needs(python="3.12.1"), Offer({}, {}, "3.11"), False),
        (_needs(python="3.12.1"), Offer({}, {}, ""), False),
        (_needs(python="3.12.1", any_python=True), Offer({}, {}, "3.11"), True),
        (_needs(python="3.99.0"), Offer({}, {}, "3.9"), False),
    ],
)
def test_a_task_fits_only_a_worker_with_its_labels_resources_and_python(
    needs: Needs, offer: Offer, fits: bool
) -> None:
    assert needs.fits(offer) is fits


def test_no_runtime_recorded_means_any_python() -> None:
    assert Needs.of(common_pb2.Placement(), None).python == ""
    assert Needs.of(None, _runtime("")).python == ""
    assert Needs.of(None, _runtime("3.12.0")).python == "3.12"


def test_unmet_names_what_no_connected_worker_has() -> None:
    workers = [Offer({"gpu": "a100"}, {"gpu": 1.0}, "3.11"), Offer({}, {}, "3.11")]
    assert unmet(_needs({"gpu": "h200"}), workers) == "no connected worker has label gpu=h200"
    assert unmet(_needs(python="3.12.0"), workers) == (
        "no worker runs Python 3.12 (connected: 3.11)"
    )
    assert unmet(_needs(resources={"gpu": 4}), workers) == (
        "no connected worker has 4 of resource gpu (the most is 1)"
    )
    # Each need is met by some worker, but no worker meets both.
    both = unmet(
        _needs({"gpu": "a100"}, python="3.11.0"), [*workers[1:], Offer({"gpu": "a100"}, {}, "3.12")]
    )
    assert both == "no connected worker has all of: label gpu=a100, Python 3.11"
    assert unmet(_needs({"gpu": "a100"}), workers) == ""
    assert unmet(_needs(), []) == "no worker is connected"


@pytest.mark.parametrize("mode", ["push", "pull", "local"])
def test_labelled_tasks_go_only_to_matching_workers_in_every_mode(mode: str) -> None:
    scheduler = Scheduler(mode)
    gpu = _worker("gpu", 4, labels={"gpu": "h200"}, mode=mode)
    cpu = _worker("cpu", 4, mode=mode)
    scheduler.attach(gpu)
    scheduler.attach(cpu)
    if mode == "pull":
        scheduler.grant(gpu, 4)
        scheduler.grant(cpu, 4)
    for i in range(3):
        scheduler.add(_needing(i, _needs({"gpu": "h200"})))
    for i in range(3, 6):
        scheduler.add(_needing(i, _needs()))
    plan = scheduler.plan()
    where = {task.task_id: session.worker_id for session, task in plan}
    assert len(where) == 6
    assert {where[f"t{i}"] for i in range(3)} == {"gpu"}


def test_a_task_no_free_worker_can_take_does_not_block_the_queue() -> None:
    scheduler = Scheduler("push")
    cpu = _worker("cpu", 2)
    scheduler.attach(cpu)
    scheduler.add(_needing(0, _needs({"gpu": "h200"})))  # nobody has it
    scheduler.add(_needing(1, _needs(python="3.12.0")))  # nobody runs it
    scheduler.add(_needing(2, _needs()))
    scheduler.add(_needing(3, _needs()))
    scheduler.add(_needing(4, _needs()))
    plan = scheduler.plan()
    assert [t.task_id for _, t in plan] == ["t2", "t3"]
    assert [t.task_id for t in scheduler.queued()] == ["t0", "t1", "t4"]
    assert scheduler.queued_count() == 3
    # A worker that can take the first one arrives: it goes, still ahead of t4.
    gpu = _worker("gpu", 1, labels={"gpu": "h200"})
    scheduler.attach(gpu)
    assert [(s.worker_id, t.task_id) for s, t in scheduler.plan()] == [("gpu", "t0")]
    assert [t.task_id for t in scheduler.queued()] == ["t1", "t4"]


def test_a_busy_matching_worker_does_not_hold_back_others() -> None:
    scheduler = Scheduler("push")
    gpu = _worker("gpu", 1, labels={"gpu": "h200"})
    cpu = _worker("cpu", 1)
    scheduler.attach(gpu)
    scheduler.attach(cpu)
    for i in range(3):
        scheduler.add(_needing(i, _needs({"gpu": "h200"})))
    scheduler.add(
        _needing(
            3,
            _needs(),
        )
    )
    plan = scheduler.plan()
    assert sorted((s.worker_id, t.task_id) for s, t in plan) == [("cpu", "t3"), ("gpu", "t0")]


def test_forgotten_and_requeued_tasks_keep_one_place_in_the_queue() -> None:
    scheduler = Scheduler("push")
    tasks = [_task(i) for i in range(3)]
    for task in tasks:
        scheduler.add(task)
    scheduler.forget("t1")
    scheduler.requeue(tasks[2])  # moves to the front, once
    assert [t.task_id for t in scheduler.queued()] == ["t2", "t0"]
    assert scheduler.queued_count() == 2
    scheduler.attach(_session("a", 10))
    assert [t.task_id for _, t in scheduler.plan()] == ["t2", "t0"]
    assert scheduler.queued_count() == 0


def test_review_gives_reasons_and_expires_only_after_the_wait() -> None:
    scheduler = Scheduler("push")
    cpu = _worker("cpu", 1)
    scheduler.attach(cpu)
    stuck = _needing(0, _needs({"gpu": "h200"}))
    plain = _needing(1, _needs())
    scheduler.add(stuck)
    scheduler.add(plain)
    cpu.reserved = 1  # busy: the plain task waits for a free worker only
    first = scheduler.review(100.0, wait=60.0)
    assert first.reasons == [(stuck, "no connected worker has label gpu=h200")]
    assert first.expired == []
    assert scheduler.review(130.0, wait=60.0).reasons == []  # unchanged: nothing to store
    assert scheduler.review(159.0, wait=60.0).expired == []
    late = scheduler.review(160.0, wait=60.0)
    assert late.expired == [stuck]
    assert [t.task_id for t in scheduler.queued()] == ["t1"]
    assert "t0" in scheduler.tasks  # held until its failure is stored


def test_review_resets_the_wait_when_a_matching_worker_connects() -> None:
    scheduler = Scheduler("push")
    scheduler.attach(_worker("cpu", 1))
    stuck = _needing(0, _needs({"gpu": "h200"}))
    scheduler.add(stuck)
    scheduler.review(0.0, wait=10.0)
    gpu = _worker("gpu", 1, labels={"gpu": "h200"})
    gpu.reserved = 1  # connected but busy: the task can wait for it
    scheduler.attach(gpu)
    assert scheduler.review(5.0, wait=10.0).reasons == [(stuck, "")]
    scheduler.detach(gpu)
    assert scheduler.review(9.0, wait=10.0).expired == []
    assert scheduler.review(18.0, wait=10.0).expired == []  # counted again from 9.0
    assert scheduler.review(19.0, wait=10.0).expired == [stuck]


def test_review_with_no_worker_connected_gives_a_reason_but_never_expires() -> None:
    scheduler = Scheduler("push")
    task = _needing(0, _needs())
    scheduler.add(task)
    assert scheduler.review(0.0, wait=1.0).reasons == [(task, "no worker is connected")]
    assert scheduler.review(100.0, wait=1.0).expired == []
    draining = _worker("w", 1)
    draining.draining = True
    scheduler.attach(draining)
    assert scheduler.review(200.0, wait=1.0).expired == []


def test_held_attempts_are_released_through_the_session() -> None:
    scheduler = Scheduler("push")
    session = _session("a", 1)
    scheduler.attach(session)
    for i in range(3):
        scheduler.add(_task(i))
    plan = scheduler.plan()
    assert len(plan) == 2 and session.reserved == 2  # one process, one prefetched
    (_, first), (_, second) = plan
    session.hold("x", first, 1.0)
    scheduler.unreserve(session, second)  # not assigned after all: first in the queue again
    assert session.reserved == 0 and scheduler.queued()[0] is second
    session.hold("y", _task(9), 2.0)
    session.deadlines["x"] = 5.0
    del session.unstarted["x"]  # x started
    assert session.release("x") == (first, False) and "x" not in session.deadlines
    assert session.release("x") == (None, False)
    session.hold("z", _task(8), 3.0)
    session.starting.add("z")  # its start is being written: settled by that write
    prefetched, others = session.release_all()
    assert [a for a, _ in prefetched] == ["y"] and others == []
    assert session.in_flight == {} and session.unstarted == {} and session.assigned == 3
