"""Queued tasks that no connected worker can take: why they wait (stored for the gateways to
show), and a FAILED NO_COMPATIBLE_WORKER once they have waited too long."""

from __future__ import annotations

import logging
import pickle
import time
import uuid

from services.common.store import QueuedFailure, TaskStore

from .backoff import through_outages
from .events import GatewayEvents
from .scheduler import Scheduler, Task
from .settings import DispatcherSettings

__all__ = ["Unplaceable"]

log = logging.getLogger(__name__)

# A pending reason that matches none, so that the next review stores the task's reason again.
_UNSTORED = "\0"
# Pending reasons stored in one Redis call.
_PENDING_BATCH = 500


class Unplaceable:
    """Reviews the queue (see :meth:`Scheduler.review`) and stores what it found."""

    def __init__(
        self,
        settings: DispatcherSettings,
        store: TaskStore,
        scheduler: Scheduler,
        events: GatewayEvents,
    ) -> None:
        self._settings = settings
        self._store = store
        self._scheduler = scheduler
        self._events = events

    async def review(self) -> None:
        """Stores why queued tasks wait, and fails those no worker could take for too long."""
        wait = self._settings.no_worker_timeout_seconds
        review = self._scheduler.review(time.monotonic(), wait)
        await self._store_reasons(review.reasons)
        if review.expired:
            await self._fail(review.expired)

    async def _store_reasons(self, reasons: list[tuple[Task, str]]) -> None:
        """Stores changed pending reasons; those not stored are tried again at the next review."""
        for start in range(0, len(reasons), _PENDING_BATCH):
            part = reasons[start : start + _PENDING_BATCH]
            try:
                await self._store.set_pending([(t.task_id, r) for t, r in part])
            except Exception as exc:
                for task, _ in reasons[start:]:
                    task.pending_reason = _UNSTORED
                log.warning("pending reasons not stored: %s", exc)
                return

    async def _fail(self, tasks: list[Task]) -> None:
        """FAILS tasks (taken out of the queue) that no connected worker could take in time."""
        wait = self._settings.no_worker_timeout_seconds
        failures = []
        for task in tasks:
            message = f"{task.pending_reason} (waited {wait:g} s for one)"
            failures.append(
                QueuedFailure(
                    task.task_id,
                    uuid.uuid4().hex,
                    pickle.dumps(RuntimeError(message)),
                    "NO_COMPATIBLE_WORKER",
                    message,
                )
            )
        log.warning("%d task(s) failed: no connected worker could take them", len(tasks))
        try:
            failed = await through_outages(lambda: self._store.fail_queued(failures))
        except BaseException:
            for task in tasks:  # not stored: they stay queued, and are reviewed again
                self._scheduler.requeue(task)
            raise
        for task, record in zip(tasks, failed, strict=True):
            self._scheduler.forget(task.task_id)  # FAILED now, or no longer QUEUED anyway
            if record is not None:
                self._events.emit_state(record)
