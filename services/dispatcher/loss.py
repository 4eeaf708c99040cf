"""Lost attempts: a worker that went away, a process that died, a task stranded in Redis.

Their tasks go back to the queue in Redis (which counts as one of their attempts), or FAIL when
they have used all their attempts; the gateways hear which.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence

from faas.v1 import common_pb2

from services.common.logs import ids
from services.common.store import LostAttempt, Requeued, RequeueResult, TaskStore

from .backoff import through_outages
from .events import GatewayEvents
from .scheduler import Scheduler, Session
from .settings import DispatcherSettings

__all__ = ["Loss"]

log = logging.getLogger(__name__)


class Loss:
    """Requeues lost attempts in Redis and announces what that did.

    ``settling`` is the set of attempts whose write to Redis is under way (the sweep leaves them
    alone); ``stopping`` says whether the dispatcher shuts down (then running tasks stay RUNNING
    for the next dispatcher to adopt).
    """

    def __init__(
        self,
        settings: DispatcherSettings,
        store: TaskStore,
        scheduler: Scheduler,
        events: GatewayEvents,
        settling: set[str],
        wake: Callable[[], None],
        stopping: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self._store = store
        self._scheduler = scheduler
        self._events = events
        self._settling = settling
        self._wake = wake
        self._stopping = stopping

    async def lose(self, session: Session, reason: str) -> None:
        """A session ended: its in-flight tasks go back to the queue (or FAILED)."""
        self._scheduler.detach(session)
        # The writes of starts under way settle theirs (Starts._write).
        prefetched, lost_items = session.release_all()
        for _, task in prefetched:  # QUEUED in Redis all along: back to the queue, no write
            self._scheduler.requeue(task)
        if prefetched:
            log.info(
                "worker %s: %d prefetched task(s) requeued", session.worker_id, len(prefetched)
            )
            self._wake()
        if self._stopping() or not lost_items:
            return  # on shutdown they stay RUNNING for the next dispatcher to adopt
        log.warning(
            "worker %s lost (%s): %d task(s) in flight", session.worker_id, reason, len(lost_items)
        )
        lost = [LostAttempt(task.task_id, attempt) for attempt, task in lost_items]
        self._settling.update(session_attempts := [a for a, _ in lost_items])
        try:
            results = await self.requeue(lost, f"worker {session.worker_id} was lost")
        finally:
            self._settling.difference_update(session_attempts)
        for (attempt, task), result in zip(lost_items, results, strict=True):
            log.info(
                "task %s: attempt %s lost with worker %s: %s",
                task.task_id,
                attempt,
                session.worker_id,
                result.result.name,
                extra=ids(task.task_id, session.worker_id, attempt),
            )
            if result.result is RequeueResult.REQUEUED:
                self._scheduler.requeue(task)
            else:
                self._scheduler.forget(task.task_id)
        self.announce(lost, results)
        self._wake()

    async def requeue(
        self, lost: Sequence[LostAttempt], why: str, cause: str = "WORKER_LOST"
    ) -> list[Requeued]:
        """Puts the attempts back in Redis (waiting out outages); FAILS those with none left."""
        message = f"task failed: {why} on each of its attempts"
        error = RuntimeError(message) if cause == "WORKER_LOST" else ChildProcessError(message)
        final = pickle.dumps(error)
        return await through_outages(
            lambda: self._store.requeue_attempts(
                lost,
                max_attempts=self._settings.max_attempts,
                final_result=final,
                final_message=message,
                final_cause=cause,
            )
        )

    def announce(self, lost: Sequence[LostAttempt], results: Sequence[Requeued]) -> None:
        """Tells the gateways: QUEUED again, or the FAILED state as stored."""
        for item, result in zip(lost, results, strict=True):
            if result.result is RequeueResult.REQUEUED:
                self._events.emit(item.task_id, common_pb2.TASK_STATUS_QUEUED)
            elif result.record is not None:
                self._events.emit_state(result.record)
