"""Starts that workers report: Redis records the attempts RUNNING (in batches), then the gateways
hear of them. Until then a prefetched attempt is QUEUED in Redis (see :mod:`.scheduler`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from faas.v1 import common_pb2

from services.common.batcher import BatchQueue
from services.common.logs import ids
from services.common.store import AttemptStart, TaskStore

from .backoff import through_outages
from .events import GatewayEvents
from .liveness import set_deadline
from .loss import Loss
from .scheduler import Scheduler, Session, Task
from .settings import DispatcherSettings

__all__ = ["Starts"]

log = logging.getLogger(__name__)


class Starts:
    """Writes reported starts to Redis, and settles the attempts once written.

    ``settling`` is the set of attempts whose write to Redis is under way (the sweep leaves them
    alone); an attempt whose session ended while its start was written is lost through ``loss``.
    """

    def __init__(
        self,
        settings: DispatcherSettings,
        store: TaskStore,
        scheduler: Scheduler,
        events: GatewayEvents,
        loss: Loss,
        settling: set[str],
        wake: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._store = store
        self._scheduler = scheduler
        self._events = events
        self._loss = loss
        self._settling = settling
        self._wake = wake
        self._starter: BatchQueue[tuple[Session, str, Task]] = BatchQueue(self._write)

    def started(self, session: Session, attempt_ids: Iterable[str]) -> int:
        """A session's processes started these attempts: Redis records them RUNNING (batched).

        Attempts the session does not hold, or whose start is known already, are ignored. The
        dispatcher's own deadline for a timed task counts from here. Returns how many started.
        """
        now = time.monotonic()
        grace = self._settings.timeout_grace_seconds
        items = []
        for attempt_id in attempt_ids:
            if attempt_id not in session.unstarted or attempt_id in session.starting:
                continue
            session.starting.add(attempt_id)
            task = session.in_flight[attempt_id]
            set_deadline(session, attempt_id, task, grace, now)
            items.append((session, attempt_id, task))
        if items:
            self._settling.update(attempt_id for _, attempt_id, _ in items)
            self._starter.add(items)
        return len(items)

    async def _write(self, items: list[tuple[Session, str, Task]]) -> None:
        starts = [AttemptStart(t.task_id, a, s.worker_id) for s, a, t in items]
        attempt_ids = [attempt_id for _, attempt_id, _ in items]
        try:
            # A timed-out write is retried with the same attempts; a start that landed reports
            # itself as started.
            landed = await through_outages(lambda: self._store.start_attempts(starts))
            stranded = self._settle(items, landed)
            if stranded:
                gone = Session("", "", 0, 0, self._settings.mode, in_flight=dict(stranded))
                await self._loss.lose(gone, "it disconnected while its tasks were starting")
        finally:
            self._settling.difference_update(attempt_ids)
            self._wake()

    def _settle(
        self, items: list[tuple[Session, str, Task]], landed: list[bool]
    ) -> list[tuple[str, Task]]:
        """Applies written starts to the sessions that hold them; returns those RUNNING in Redis
        that no session holds any more (stranded: to be lost at once)."""
        stranded: list[tuple[str, Task]] = []
        for (session, attempt_id, task), ok in zip(items, landed, strict=True):
            session.starting.discard(attempt_id)
            holder: Session | None = session
            if session.closed:  # lost, or its worker reconnected (and kept it?)
                current = self._scheduler.sessions.get(session.worker_id)
                holder = current if current and attempt_id in current.in_flight else None
            if holder is None:
                if ok:
                    stranded.append((attempt_id, task))  # RUNNING now, and nobody's
                else:
                    self._scheduler.forget(task.task_id)  # not QUEUED: it moved on
                continue
            holder.starting.discard(attempt_id)
            if attempt_id not in holder.in_flight:
                continue  # its outcome came first (and was stored with it), or taken back
            if ok:
                holder.unstarted.pop(attempt_id, None)
                log.debug(
                    "task %s started on worker %s",
                    task.task_id,
                    holder.worker_id,
                    extra=ids(task.task_id, holder.worker_id, attempt_id),
                )
                self._events.emit(task.task_id, common_pb2.TASK_STATUS_RUNNING)
            else:  # not QUEUED in Redis: it ended or moved on; its outcome will be refused
                holder.release(attempt_id)
                self._scheduler.forget(task.task_id)
        return stranded
