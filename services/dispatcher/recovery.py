"""Carrying on from Redis: queued tasks this dispatcher does not hold yet (reconcile), attempts
that were RUNNING before it started (orphans, adopted by their worker when it reconnects, or
requeued after a grace), attempts a reconnecting worker still runs, and the stranded-task sweep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from faas.v1 import common_pb2

from services.common.store import LostAttempt, QueuedTask, RequeueResult, RunningAttempt, TaskStore

from .backoff import through_outages
from .liveness import set_deadline
from .loss import Loss
from .placement import Needs
from .scheduler import Scheduler, Session, Task
from .settings import DispatcherSettings
from .sweep import StrandedSweep

__all__ = ["Recovery", "task_of"]

log = logging.getLogger(__name__)

# Queued tasks loaded from Redis in one call.
_LOAD_BATCH = 500


def task_of(spec: QueuedTask) -> Task:
    """The task to hold for one stored in Redis."""
    placement = common_pb2.Placement.FromString(spec.placement) if spec.placement else None
    runtime = common_pb2.Runtime.FromString(spec.runtime) if spec.runtime else None
    task = Task(spec.task_id, spec.function_id, spec.payload, spec.timeout)
    if placement is not None:
        task.memory_limit_mb = placement.memory_limit_mb
        task.cpu_limit_seconds = placement.cpu_limit_seconds
    task.needs = Needs.of(placement, runtime)
    task.pending_reason = spec.pending_reason
    return task


class Recovery:
    """The orphans (task_id -> its attempt, RUNNING before a restart and waiting for its worker),
    their adoption, and the reconcile and sweep that find what Redis holds and nothing here does.

    ``settling`` is the set of attempts whose write to Redis is under way (shared with the other
    parts); ``spawn`` runs a step in the background.
    """

    def __init__(
        self,
        settings: DispatcherSettings,
        store: TaskStore,
        scheduler: Scheduler,
        loss: Loss,
        settling: set[str],
        spawn: Callable[[Awaitable[None]], None],
        wake: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._store = store
        self._scheduler = scheduler
        self._loss = loss
        self._settling = settling
        self._spawn = spawn
        self._wake = wake
        self.orphans: dict[str, RunningAttempt] = {}
        self._orphan_deadline = 0.0
        self._sweep = StrandedSweep()
        self._reconciling = asyncio.Lock()

    # Starting up

    async def recover(self) -> None:
        """Reads what was RUNNING before this start (the orphans), then reconciles."""
        running = await self._store.running_ids()
        self.orphans = await self._store.running_attempts(running) if running else {}
        self._orphan_deadline = time.monotonic() + self._settings.recovery_grace_seconds
        if self.orphans:
            log.info("%d task(s) were running before this start", len(self.orphans))
        await self.reconcile()

    async def reconcile(self) -> None:
        """Queues the QUEUED tasks in Redis that this dispatcher does not hold yet."""
        async with self._reconciling:
            ids = [i for i in await self._store.queued_ids() if i not in self._scheduler.tasks]
            for start in range(0, len(ids), _LOAD_BATCH):
                for spec in await self._store.load_queued(ids[start : start + _LOAD_BATCH]):
                    self._scheduler.add(task_of(spec))
            if ids:
                log.info("reconciled %d queued task(s) from redis", len(ids))
                self._wake()
            if self.orphans and time.monotonic() >= self._orphan_deadline:
                await self._requeue_orphans()

    async def _requeue_orphans(self) -> None:
        lost = [LostAttempt(t, a.attempt_id) for t, a in self.orphans.items()]
        self.orphans.clear()
        requeued = await self._requeue_and_reload(lost, "its worker did not come back")
        log.info("requeued %d task(s) whose worker did not reconnect", requeued)

    async def _requeue_and_reload(self, lost: list[LostAttempt], why: str) -> int:
        """Requeues attempts that no session holds and queues their tasks here again."""
        self._settling.update(x.attempt_id for x in lost)
        try:
            results = await self._loss.requeue(lost, why)
        finally:
            self._settling.difference_update(x.attempt_id for x in lost)
        self._loss.announce(lost, results)
        pairs = list(zip(lost, results, strict=True))
        ids = [x.task_id for x, r in pairs if r.result is RequeueResult.REQUEUED]
        for x, r in pairs:
            if r.result is RequeueResult.FAILED:
                self._scheduler.forget(x.task_id)
        for task_id in ids:
            self._scheduler.forget(task_id)  # held in a stale state, if at all
        for spec in await through_outages(lambda: self._store.load_queued(ids)):
            self._scheduler.add(task_of(spec))
        self._wake()
        return len(ids)

    # Stranded tasks

    async def sweep(self) -> int:
        """Requeues the RUNNING tasks whose attempt nothing here holds (two sweeps in a row)."""
        running_ids = await self._store.running_ids()
        running = await self._store.running_attempts(running_ids) if running_ids else {}
        stranded = self._sweep.check(
            {t: a.attempt_id for t, a in running.items()}, self.held_attempts()
        )
        if not stranded:
            return 0
        log.warning("%d task(s) were RUNNING under an attempt nothing held", len(stranded))
        return await self._requeue_and_reload(stranded, "nothing held its attempt")

    def held_attempts(self) -> set[str]:
        """Every attempt something here holds: a session, an adoption, an orphan, a write."""
        held = set(self._settling)
        held.update(a.attempt_id for a in self.orphans.values())
        for session in self._scheduler.sessions.values():
            held.update(session.in_flight)
            held.update(session.adopting)
        return held

    # Orphans

    def is_orphan_of(self, session: Session, task_id: str, attempt_id: str) -> bool:
        """Whether ``attempt_id`` is the orphan of ``task_id`` recorded for the session's worker."""
        orphan = self.orphans.get(task_id)
        return (
            orphan is not None
            and orphan.attempt_id == attempt_id
            and orphan.worker_id == session.worker_id
        )

    def settled(self, task_id: str) -> None:
        """The task's outcome is stored: it is no orphan any more."""
        self.orphans.pop(task_id, None)

    # Sessions

    def attach(self, session: Session, running_attempt_ids: Sequence[str]) -> list[str]:
        """Adds a session; adopts attempts it still runs from before a dispatcher restart.

        Only attempts recorded for the session's worker id are adopted. A stale session of the
        same worker id (one that stopped heartbeating) is closed for good, and the attempts it
        held that the worker still runs move to the new session.
        """
        old = self._scheduler.sessions.get(session.worker_id)
        if old is not None:  # the same worker reconnected before its old stream was reaped
            _move(old, session, running_attempt_ids)
            if old.link is not None:
                old.link.close()  # really end its stream, not only forget it
            self._spawn(self._loss.lose(old, "it reconnected"))
        by_attempt = {
            a.attempt_id: t for t, a in self.orphans.items() if a.worker_id == session.worker_id
        }
        adopt = [by_attempt[a] for a in running_attempt_ids if a in by_attempt]
        self._scheduler.attach(session)
        if adopt:
            for task_id in adopt:
                session.adopting.add(self.orphans.pop(task_id).attempt_id)
            self._spawn(self._adopt(session, adopt))
        self._wake()
        return adopt

    async def _adopt(self, session: Session, task_ids: list[str]) -> None:
        specs = await through_outages(lambda: self._store.load_queued(task_ids, status="RUNNING"))
        attempts = await through_outages(lambda: self._store.running_attempts(task_ids))
        for spec in specs:
            running = attempts.get(spec.task_id)
            attempt_id = running.attempt_id if running is not None else None
            # Not if its outcome came in meanwhile (report() took it out of `adopting`).
            if attempt_id is not None and attempt_id in session.adopting and not session.closed:
                session.adopting.discard(attempt_id)
                task = task_of(spec)
                self._scheduler.tasks[task.task_id] = task
                session.in_flight[attempt_id] = task
                set_deadline(session, attempt_id, task, self._settings.timeout_grace_seconds)
        log.info("worker %s kept %d running task(s)", session.worker_id, len(specs))


def _move(old: Session, new: Session, attempt_ids: Sequence[str]) -> None:
    """The attempts of ``old`` that its worker still runs become the new session's."""
    for attempt_id in attempt_ids:
        if attempt_id in old.in_flight:
            new.in_flight[attempt_id] = old.in_flight.pop(attempt_id)
            if attempt_id in old.deadlines:
                new.deadlines[attempt_id] = old.deadlines.pop(attempt_id)
            if attempt_id in old.unstarted:  # its start comes again after the welcome
                new.unstarted[attempt_id] = old.unstarted.pop(attempt_id)
                if attempt_id in old.starting:
                    new.starting.add(attempt_id)  # its write is under way
