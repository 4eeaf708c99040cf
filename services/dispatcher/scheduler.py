"""Which worker gets which task: pure bookkeeping, no I/O, so it is unit-tested on its own.

Push mode gives a task to the connected worker with the fewest in-flight tasks relative to its
capacity (ties round-robin), never beyond its processes plus a prefetch that follows how fast the
worker drains (see :meth:`Session.retarget`), and never below ``--prefetch``. A prefetched task
is the worker's but not started: it is QUEUED in Redis until the worker says a process started
it (``unstarted`` below), so a lost worker's prefetched tasks go back to the queue at once, with
no write to Redis. Pull mode gives tasks only to
workers that asked for them, oldest request first. In every mode a task goes only to a worker
that has what it needs (see :mod:`.placement`). Tasks queue by their needs, so a task that no
free worker can take now never holds back the tasks behind it (no head-of-line blocking).
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from faas.v1 import common_pb2
from faas.v1.dispatcher_pb2 import AssignmentBatch

from services.common.function_cache import FunctionCache
from services.common.runtime import current_runtime

from .placement import ANY, Needs, Offer, unmet


class Link(Protocol):
    """How the dispatcher reaches a session's worker: its Connect stream, or the local pool."""

    def deliver(self, batch: AssignmentBatch) -> None:
        """Hands over assignments (and the function bodies they need, first)."""

    def acknowledge(self, attempt_ids: list[str]) -> None:
        """Says these outcomes are stored (or refused): the worker may forget them."""

    def close(self) -> None:
        """Ends the link for good."""


@dataclass(slots=True)
class Task:
    """A task the dispatcher holds, queued or in flight."""

    task_id: str
    function_id: str
    payload: bytes
    timeout: float | None
    needs: Needs = ANY
    # Its own memory (MiB) and CPU time (s) limits, from its placement; 0: the worker's maxima.
    memory_limit_mb: int = 0
    cpu_limit_seconds: float = 0.0
    # The pending reason last stored for it ("" none), and since when (monotonic) no connected
    # worker could take it (None: some can).
    pending_reason: str = ""
    unplaceable_since: float | None = None
    # Its place in the queue: the sequence number it was queued under, or None when not queued.
    seq: int | None = None
    # When (monotonic) it was last queued: the metrics' queue ages.
    queued_at: float = 0.0


# The adaptive prefetch: enough tasks beyond the processes to keep them busy for this long at the
# rate the worker drains, within these bounds (per process).
PREFETCH_HORIZON_SECONDS = 0.1
MAX_PREFETCH_PER_PROCESS = 64
# The drain rate is measured over windows at least this long, and smoothed.
_RATE_WINDOW_SECONDS = 0.2


@dataclass(eq=False, slots=True)
class Session:
    """One connected worker (or the dispatcher's own pool in local mode)."""

    worker_id: str
    host: str
    pid: int
    capacity: int
    mode: str
    prefetch: int = 0  # the least prefetch (--prefetch); the adaptive one may be more
    in_flight: dict[str, Task] = field(default_factory=dict)  # attempt_id -> task
    # Attempts in in_flight that Redis does not record as RUNNING yet (prefetched, or started
    # with the write of the start under way), in the order they were assigned: attempt_id ->
    # when (monotonic).
    unstarted: dict[str, float] = field(default_factory=dict)
    # Attempts of unstarted whose start is being written to Redis.
    starting: set[str] = field(default_factory=set)
    # Since when (monotonic) the worker has had prefetched attempts waiting while it had a free
    # process (None: it has not); a worker that leaves them waiting loses them.
    stalled_since: float | None = None
    # The adaptive prefetch (tasks beyond capacity), from the drain rate (outcomes per second).
    target: int = -1
    drain_rate: float = 0.0
    _drained: int = 0
    _window_start: float = field(default_factory=time.monotonic)
    # attempt_id -> monotonic time past which the dispatcher takes a timed task away.
    deadlines: dict[str, float] = field(default_factory=dict)
    reserved: int = 0  # chosen for tasks whose start is being written to Redis
    credits: int = 0  # pull mode: slots the worker asked for
    credit_since: float = 0.0
    draining: bool = False
    closed: bool = False
    # The function bodies the worker holds, as its cache's mirror (see
    # services/common/function_cache.py); the link applies it to each batch it sends.
    function_cache: FunctionCache = field(
        default_factory=lambda: FunctionCache(0, keep_bodies=False)
    )
    # Attempts from before a dispatcher restart that this session is being given back.
    adopting: set[str] = field(default_factory=set)
    assigned: int = 0
    completed: int = 0
    failed: int = 0
    connected_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    # Whether heartbeats are expected (False for the dispatcher's own local pool).
    remote: bool = True
    # What the worker runs and offers; a session built without them (the local pool) runs
    # this process's runtime.
    runtime: common_pb2.Runtime = field(default_factory=current_runtime)
    labels: dict[str, str] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    # The link that owns the session (None: a stand-in with nothing to reach).
    link: Link | None = None

    def available(self) -> int:
        if self.closed or self.draining:
            return 0
        if self.mode == "pull":
            return self.credits
        return self.capacity + self.prefetched() - len(self.in_flight) - self.reserved

    def max_credits(self) -> int:
        """Pull mode: the most credits kept unanswered (the worker is told so in its welcome)."""
        return max(self.capacity * (1 + MAX_PREFETCH_PER_PROCESS), self.capacity + self.prefetch)

    def prefetched(self) -> int:
        """How many tasks beyond its processes the session may hold now."""
        if self.target < 0:  # no drain rate measured yet: as many as its processes
            return max(self.prefetch, self.capacity)
        return max(self.prefetch, self.target)

    def drained(self, count: int, now: float) -> None:
        """``count`` attempts ended (outcomes came): feeds the drain rate."""
        self._drained += count
        self.retarget(now)

    def retarget(self, now: float) -> None:
        """Updates the drain rate once a window has passed, and the prefetch that follows it:
        processes busy for ``PREFETCH_HORIZON_SECONDS`` more at that rate, bounded."""
        span = now - self._window_start
        if span < _RATE_WINDOW_SECONDS:
            return
        rate = self._drained / span
        self.drain_rate = rate if self.target < 0 else (self.drain_rate + rate) / 2
        self._drained, self._window_start = 0, now
        wanted = math.ceil(self.drain_rate * PREFETCH_HORIZON_SECONDS)
        self.target = min(max(wanted, 0), MAX_PREFETCH_PER_PROCESS * self.capacity)

    # Holding attempts: every change of in_flight, unstarted and deadlines goes through these.

    def hold(self, attempt_id: str, task: Task, now: float) -> None:
        """A planned task becomes an attempt of this session, prefetched until it starts."""
        self.reserved -= 1
        self.in_flight[attempt_id] = task
        self.unstarted[attempt_id] = now
        self.assigned += 1

    def release(self, attempt_id: str) -> tuple[Task | None, bool]:
        """The session no longer holds ``attempt_id``: its task (None if it did not hold it)
        and whether Redis may not record its start (it was unstarted)."""
        self.deadlines.pop(attempt_id, None)
        unstarted = self.unstarted.pop(attempt_id, None) is not None
        return self.in_flight.pop(attempt_id, None), unstarted

    def release_all(self) -> tuple[list[tuple[str, Task]], list[tuple[str, Task]]]:
        """Lets go of everything held: (prefetched attempts no process started, the others).
        Attempts whose start is being written are in neither (that write settles them)."""
        waiting = set(self.waiting())
        held = list(self.in_flight.items())
        self.in_flight.clear()
        self.unstarted.clear()
        self.deadlines.clear()
        prefetched = [(a, t) for a, t in held if a in waiting]
        others = [(a, t) for a, t in held if a not in waiting and a not in self.starting]
        return prefetched, others

    def busy(self) -> int:
        """Attempts a process runs (or ran, the outcome not in yet): held, not waiting to start."""
        return len(self.in_flight) - len(self.unstarted) + len(self.starting)

    def waiting(self) -> list[str]:
        """Prefetched attempts that no process has started, oldest first."""
        return [a for a in self.unstarted if a not in self.starting]

    def load(self) -> float:
        return (len(self.in_flight) + self.reserved) / max(self.capacity, 1)

    def offer(self) -> Offer:
        return Offer.of(self.labels, self.resources, self.runtime)


@dataclass(slots=True)
class Review:
    """What :meth:`Scheduler.review` found: pending reasons to store, tasks to fail."""

    # Queued tasks whose pending reason changed, with the new one ("" cleared).
    reasons: list[tuple[Task, str]] = field(default_factory=list)
    # Tasks no connected worker could take for the whole wait, taken out of the queue.
    expired: list[Task] = field(default_factory=list)


class Scheduler:
    """The queue of tasks, by their needs, and the sessions they go to."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.tasks: dict[str, Task] = {}  # every task held: queued or in flight
        self.sessions: dict[str, Session] = {}
        # needs -> (seq, task) in queue order; an entry whose task has another seq is stale.
        self._queues: dict[Needs, deque[tuple[int, Task]]] = {}
        self._queued = 0
        self._back = itertools.count()
        self._front = itertools.count(-1, -1)
        self._order = itertools.count()
        self._rank: dict[str, int] = {}

    # Tasks

    def add(self, task: Task, *, front: bool = False) -> bool:
        """Queues a task unless it is held already; True when added."""
        if task.task_id in self.tasks:
            return False
        self.tasks[task.task_id] = task
        self._push(task, front=front)
        return True

    def requeue(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        self._push(task, front=True)

    def forget(self, task_id: str) -> None:
        task = self.tasks.pop(task_id, None)
        if task is not None:
            self._unqueue(task)

    def take(self, task: Task) -> None:
        """Takes a queued task out of the queue; it stays held until forgotten or requeued."""
        self._unqueue(task)

    def _push(self, task: Task, *, front: bool) -> None:
        self._unqueue(task)
        seq = next(self._front) if front else next(self._back)
        task.seq = seq
        task.queued_at = time.monotonic()
        queue = self._queues.setdefault(task.needs, deque())
        if front:
            queue.appendleft((seq, task))
        else:
            queue.append((seq, task))
        self._queued += 1

    def _unqueue(self, task: Task) -> None:
        if task.seq is not None:
            task.seq = None  # its entry goes stale, dropped when it reaches the front
            self._queued -= 1

    def _head(self, needs: Needs) -> Task | None:
        queue = self._queues[needs]
        while queue and queue[0][1].seq != queue[0][0]:
            queue.popleft()
        if not queue:
            del self._queues[needs]
            return None
        return queue[0][1]

    def queued_times(self) -> list[float]:
        """When (monotonic) each queued task was queued, in no particular order."""
        return [t.queued_at for q in self._queues.values() for seq, t in q if t.seq == seq]

    def queued(self) -> list[Task]:
        """The queued tasks in the order they are offered to workers."""
        entries = [e for q in self._queues.values() for e in q if e[1].seq == e[0]]
        return [task for _, task in sorted(entries, key=lambda e: e[0])]

    # Sessions

    def attach(self, session: Session) -> None:
        self.sessions[session.worker_id] = session
        self._rank[session.worker_id] = next(self._order)

    def detach(self, session: Session) -> None:
        session.closed = True
        if self.sessions.get(session.worker_id) is session:
            del self.sessions[session.worker_id]

    def unreserve(self, session: Session, task: Task) -> None:
        """A planned task that was not assigned after all goes back to the queue, first."""
        session.reserved = max(0, session.reserved - 1)
        self.requeue(task)

    def grant(self, session: Session, slots: int) -> None:
        """Pull mode: the worker asks for ``slots`` more tasks, up to ``max_credits()``."""
        if slots <= 0:
            return
        if session.credits == 0:
            session.credit_since = time.monotonic()
        session.credits = min(session.credits + slots, session.max_credits())

    # Planning

    def plan(self) -> list[tuple[Session, Task]]:
        """Takes queued tasks and reserves a session for each, as far as capacity allows.

        The oldest queued task that some free session can take goes first; tasks that no free
        session can take stay queued, in order, without holding back the others.
        """
        out: list[tuple[Session, Task]] = []
        blocked: set[Needs] = set()  # needs no free session has, for the rest of this plan
        while self._queued and any(s.available() > 0 for s in self.sessions.values()):
            heads = [h for n in list(self._queues) if (h := self._head(n)) is not None]
            heads.sort(key=lambda t: t.seq or 0)  # oldest first; a head's seq is set
            placed = False
            for task in heads:
                if task.needs in blocked:
                    continue
                session = self._pick(task.needs)
                if session is None:
                    blocked.add(task.needs)
                    continue
                self._unqueue(task)
                task.pending_reason, task.unplaceable_since = "", None  # its start clears them
                session.reserved += 1
                if session.mode == "pull":
                    session.credits -= 1
                out.append((session, task))
                placed = True
                break
            if not placed:
                break
        return out

    def _pick(self, needs: Needs) -> Session | None:
        best: Session | None = None
        best_key: tuple[float, float] = (0.0, 0.0)
        for session in self.sessions.values():
            if session.available() <= 0 or not needs.fits(session.offer()):
                continue
            if self.mode == "pull":  # the least loaded of those that asked; then who asked first
                key = (session.load(), session.credit_since)
            else:
                key = (session.load(), float(self._rank[session.worker_id]))
            if best is None or key < best_key:
                best, best_key = session, key
        if best is not None and self.mode != "pull":
            self._rank[best.worker_id] = next(self._order)  # round-robin among equals
        return best

    def queued_count(self) -> int:
        return self._queued

    # Tasks no worker can take

    def review(self, now: float, wait: float) -> Review:
        """Pending reasons of the queued tasks, and those to fail for want of a worker.

        A task that no connected worker can take gets a reason; once that has lasted ``wait``
        seconds (counted from when it was first found so, and reset whenever a worker that can
        take it is connected) it is expired, and taken out of the queue. With no worker
        connected at all, tasks wait without expiring (the workers may be restarting).
        """
        found = Review()
        live = [s.offer() for s in self.sessions.values() if not (s.closed or s.draining)]
        for needs in list(self._queues):
            reason = unmet(needs, live)
            for seq, task in list(self._queues[needs]):
                if task.seq != seq:
                    continue
                if reason != task.pending_reason:
                    task.pending_reason = reason
                    found.reasons.append((task, reason))
                if not reason or not live:
                    task.unplaceable_since = None
                elif task.unplaceable_since is None:
                    task.unplaceable_since = now
                elif now - task.unplaceable_since >= wait:
                    self._unqueue(task)
                    found.expired.append(task)
            self._head(needs)  # drops the queue when nothing is left in it
        return found
