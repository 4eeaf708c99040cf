"""Which worker gets which task: pure bookkeeping, no I/O, so it is unit-tested on its own.

Push mode gives a task to the connected worker with the fewest in-flight tasks relative to its
capacity (ties round-robin), never beyond capacity + prefetch. Pull mode gives tasks only to
workers that asked for them, oldest request first.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from faas.v1.dispatcher_pb2 import AssignmentBatch


@dataclass(slots=True)
class Task:
    """A task the dispatcher holds, queued or in flight."""

    task_id: str
    function_id: str
    payload: bytes
    timeout: float | None


@dataclass(eq=False, slots=True)
class Session:
    """One connected worker (or the dispatcher's own pool in local mode)."""

    worker_id: str
    host: str
    pid: int
    capacity: int
    mode: str
    prefetch: int = 0
    in_flight: dict[str, Task] = field(default_factory=dict)  # attempt_id -> task
    # attempt_id -> monotonic time past which the dispatcher takes a timed task away.
    deadlines: dict[str, float] = field(default_factory=dict)
    reserved: int = 0  # chosen for tasks whose start is being written to Redis
    credits: int = 0  # pull mode: slots the worker asked for
    credit_since: float = 0.0
    draining: bool = False
    closed: bool = False
    functions_sent: set[str] = field(default_factory=set)
    # Attempts from before a dispatcher restart that this session is being given back.
    adopting: set[str] = field(default_factory=set)
    assigned: int = 0
    completed: int = 0
    failed: int = 0
    connected_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    # Whether heartbeats are expected (False for the dispatcher's own local pool).
    remote: bool = True
    # Hooks set by the link that owns the session.
    deliver: Callable[[AssignmentBatch], None] | None = None
    acknowledge: Callable[[list[str]], None] | None = None
    close: Callable[[], None] | None = None

    def available(self) -> int:
        if self.closed or self.draining:
            return 0
        if self.mode == "pull":
            return self.credits
        return self.capacity + self.prefetch - len(self.in_flight) - self.reserved

    def load(self) -> float:
        return (len(self.in_flight) + self.reserved) / max(self.capacity, 1)


class Scheduler:
    """The queue of tasks and the sessions they go to."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.queue: deque[Task] = deque()
        self.tasks: dict[str, Task] = {}  # every task held: queued or in flight
        self.sessions: dict[str, Session] = {}
        self._order = itertools.count()
        self._rank: dict[str, int] = {}

    # Tasks

    def add(self, task: Task, *, front: bool = False) -> bool:
        """Queues a task unless it is held already; True when added."""
        if task.task_id in self.tasks:
            return False
        self.tasks[task.task_id] = task
        if front:
            self.queue.appendleft(task)
        else:
            self.queue.append(task)
        return True

    def requeue(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        self.queue.appendleft(task)

    def forget(self, task_id: str) -> None:
        self.tasks.pop(task_id, None)

    # Sessions

    def attach(self, session: Session) -> None:
        self.sessions[session.worker_id] = session
        self._rank[session.worker_id] = next(self._order)

    def detach(self, session: Session) -> None:
        session.closed = True
        if self.sessions.get(session.worker_id) is session:
            del self.sessions[session.worker_id]

    def grant(self, session: Session, slots: int) -> None:
        """Pull mode: the worker asks for ``slots`` more tasks, up to its processes + prefetch."""
        if slots <= 0:
            return
        if session.credits == 0:
            session.credit_since = time.monotonic()
        session.credits = min(session.credits + slots, session.capacity + session.prefetch)

    # Planning

    def plan(self) -> list[tuple[Session, Task]]:
        """Takes queued tasks and reserves a session for each, as far as capacity allows."""
        out: list[tuple[Session, Task]] = []
        while self.queue:
            session = self._pick()
            if session is None:
                break
            task = self.queue.popleft()
            session.reserved += 1
            if session.mode == "pull":
                session.credits -= 1
            out.append((session, task))
        return out

    def _pick(self) -> Session | None:
        best: Session | None = None
        best_key: tuple[float, float] = (0.0, 0.0)
        for session in self.sessions.values():
            if session.available() <= 0:
                continue
            if self.mode == "pull":
                key = (session.credit_since, 0.0)
            else:
                key = (session.load(), float(self._rank[session.worker_id]))
            if best is None or key < best_key:
                best, best_key = session, key
        if best is not None and self.mode != "pull":
            self._rank[best.worker_id] = next(self._order)  # round-robin among equals
        return best

    def queued_count(self) -> int:
        return len(self.queue)
