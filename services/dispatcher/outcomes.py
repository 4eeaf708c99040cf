"""Outcomes that sessions report: checked against what the session holds, stored in Redis in
batches (the state as stored goes to the gateways), then acknowledged so the worker forgets them.
A process death is retried instead, when so configured."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from faas.v1 import common_pb2, dispatcher_pb2

from services.common.batcher import Batcher
from services.common.logs import ids
from services.common.store import (
    AttemptOutcome,
    LostAttempt,
    RequeueResult,
    TaskRecord,
    TaskStore,
)

from .backoff import through_outages
from .events import GatewayEvents
from .loss import Loss
from .recovery import Recovery
from .scheduler import Scheduler, Session, Task
from .settings import DispatcherSettings

__all__ = ["Outcomes", "outcome_record"]

log = logging.getLogger(__name__)

# Outcomes stored in one Redis call hold at most this many bytes of results.
_MAX_BATCH_BYTES = 64 * 1024 * 1024
# What a task printed is kept up to this many characters, whatever a worker sends (its own
# --max-output-bytes is the usual bound).
MAX_STORED_OUTPUT = 4 * 1024 * 1024
# A batch of outcomes whose store step fails (not for want of Redis) this often is left to the
# sweep, which requeues its tasks.
_STORE_TRIES = 3

_STATUS_NAMES = {
    common_pb2.TASK_STATUS_COMPLETED: "COMPLETED",
    common_pb2.TASK_STATUS_FAILED: "FAILED",
}


def _cause_name(cause: int) -> str:
    """The stored name of a cause; a value this dispatcher does not know is UNSPECIFIED ("")."""
    if cause == common_pb2.FAILURE_CAUSE_UNSPECIFIED:
        return ""
    try:
        name = common_pb2.FailureCause.Name(cause)  # type: ignore[arg-type]
    except ValueError:
        return ""
    return name.removeprefix("FAILURE_CAUSE_")


def outcome_record(
    o: dispatcher_pb2.TaskOutcome, unstarted: bool = False, worker_id: str = ""
) -> AttemptOutcome:
    """What to store for an outcome; an unknown status or cause is stored as a FAILED task."""
    status = _STATUS_NAMES.get(o.status, "FAILED")
    message = o.error.message
    if status == "FAILED" and o.status != common_pb2.TASK_STATUS_FAILED:
        message = f"the worker reported an invalid status ({o.status}); {message}".rstrip("; ")
    elif status == "FAILED" and o.error.cause and not _cause_name(o.error.cause):
        message = f"the worker reported an unknown failure cause ({o.error.cause}); {message}"
        message = message.rstrip("; ")
    return AttemptOutcome(
        task_id=o.task_id,
        attempt_id=o.attempt_id,
        status=status,
        result=o.result,
        cause=_cause_name(o.error.cause) if status == "FAILED" else "",
        message=message,
        traceback=o.error.traceback,
        unstarted=unstarted,
        worker_id=worker_id,
        output=_bounded_output(o.output),
    )


def _bounded_output(output: str) -> str:
    """``output`` cut at MAX_STORED_OUTPUT characters, with the pool's marker when cut."""
    if len(output) <= MAX_STORED_OUTPUT:
        return output
    dropped = len(output) - MAX_STORED_OUTPUT
    return (
        output[:MAX_STORED_OUTPUT]
        + f"\n[output truncated: {dropped} more characters dropped by the dispatcher,"
        f" limit {MAX_STORED_OUTPUT}]\n"
    )


class Outcomes:
    """Takes sessions' outcomes: frees their slots, stores them, acknowledges them.

    ``settling`` is the set of attempts whose write to Redis is under way (the sweep leaves them
    alone); ``recovery`` says which orphans a session may report; ``spawn`` runs a step in the
    background.
    """

    def __init__(
        self,
        settings: DispatcherSettings,
        store: TaskStore,
        scheduler: Scheduler,
        events: GatewayEvents,
        loss: Loss,
        recovery: Recovery,
        settling: set[str],
        spawn: Callable[[Awaitable[None]], None],
        wake: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._store = store
        self._scheduler = scheduler
        self._events = events
        self._loss = loss
        self._recovery = recovery
        self._settling = settling
        self._spawn = spawn
        self._wake = wake
        self._finisher: Batcher[AttemptOutcome, TaskRecord | None] = Batcher(
            self._finish_batch,
            size=lambda o: len(o.result) + len(o.output),
            max_bytes=_MAX_BATCH_BYTES,
        )

    def may_report(self, session: Session, outcome: dispatcher_pb2.TaskOutcome) -> bool:
        """Whether the session holds the attempt: given to it, adopted, or its own orphan."""
        attempt_id = outcome.attempt_id
        if attempt_id in session.in_flight or attempt_id in session.adopting:
            return True
        return self._recovery.is_orphan_of(session, outcome.task_id, attempt_id)

    def report(self, session: Session, outcomes: Sequence[dispatcher_pb2.TaskOutcome]) -> None:
        """Outcomes from a session: frees its slots now, stores them, then acknowledges them.

        Outcomes of attempts the session does not hold (never given to it, superseded, or
        timed out here) are acknowledged, so the worker drops them, and never stored.
        """
        final: list[dispatcher_pb2.TaskOutcome] = []
        crashed: list[tuple[str, Task]] = []
        refused: list[str] = []
        unstarted: set[str] = set()
        for outcome in outcomes:
            if not self.may_report(session, outcome):
                refused.append(outcome.attempt_id)
                continue
            session.adopting.discard(outcome.attempt_id)
            task, was_unstarted = session.release(outcome.attempt_id)
            if was_unstarted:
                unstarted.add(outcome.attempt_id)  # Redis may not record its start
            if task is not None and self.retries(outcome):
                crashed.append((outcome.attempt_id, task))
                self._settling.add(outcome.attempt_id)
                continue
            final.append(outcome)
            self._settling.add(outcome.attempt_id)
            if task is not None:
                if outcome.status == common_pb2.TASK_STATUS_COMPLETED:
                    session.completed += 1
                else:
                    session.failed += 1
        session.drained(len(outcomes) - len(refused), time.monotonic())
        self._wake()
        if refused:
            log.warning(
                "worker %s reported %d attempt(s) it does not hold; ignored",
                session.worker_id,
                len(refused),
            )
            if session.link is not None and not session.closed:
                session.link.acknowledge(refused)
        if final:
            self._spawn(self.store(session, final, unstarted))
        if crashed:
            self._spawn(self._retry_crashed(session, crashed))

    def retries(self, outcome: dispatcher_pb2.TaskOutcome) -> bool:
        """Whether the outcome is a process death to retry (as configured) instead of storing."""
        return (
            self._settings.retry_process_death
            and outcome.status == common_pb2.TASK_STATUS_FAILED
            and outcome.error.cause == common_pb2.FAILURE_CAUSE_PROCESS_DIED
        )

    async def _retry_crashed(self, session: Session, crashed: list[tuple[str, Task]]) -> None:
        """Process deaths, when configured to retry: the tasks go back to the queue."""
        lost = [LostAttempt(task.task_id, attempt) for attempt, task in crashed]
        try:
            results = await self._loss.requeue(lost, "its process died", "PROCESS_DIED")
        finally:
            self._settling.difference_update(attempt for attempt, _ in crashed)
        for (attempt, task), result in zip(crashed, results, strict=True):
            log.info(
                "task %s: its process died on worker %s: %s",
                task.task_id,
                session.worker_id,
                result.result.name,
                extra=ids(task.task_id, session.worker_id, attempt),
            )
            if result.result is RequeueResult.REQUEUED:
                self._scheduler.requeue(task)
            else:
                self._scheduler.forget(task.task_id)
                if result.result is RequeueResult.FAILED:
                    session.failed += 1
        self._loss.announce(lost, results)
        if session.link is not None and not session.closed:
            session.link.acknowledge([attempt for attempt, _ in crashed])
        self._wake()

    async def store(
        self,
        session: Session,
        outcomes: list[dispatcher_pb2.TaskOutcome],
        unstarted: set[str] | None = None,
    ) -> None:
        """Stores outcomes whose attempts are settling, then acknowledges them to the session."""
        try:
            records = [
                outcome_record(o, o.attempt_id in unstarted, session.worker_id)
                if unstarted
                else outcome_record(o)
                for o in outcomes
            ]
            applied = await self._store_records(records)
        finally:
            self._settling.difference_update(o.attempt_id for o in outcomes)
        if applied is None:
            return  # not acknowledged: the worker sends them again, the sweep requeues them
        for stored in applied:
            if stored is not None:
                log.debug(
                    "task %s %s on worker %s",
                    stored.task_id,
                    stored.status,
                    stored.worker_id,
                    extra=ids(stored.task_id, stored.worker_id),
                )
                self._scheduler.forget(stored.task_id)
                self._recovery.settled(stored.task_id)
                self._events.emit_state(stored)
        if session.link is not None and not session.closed:
            session.link.acknowledge([o.attempt_id for o in outcomes])

    async def _store_records(self, records: list[AttemptOutcome]) -> list[TaskRecord | None] | None:
        """Stores outcomes (waiting out Redis outages); None when the store step keeps failing."""
        for tries in range(1, _STORE_TRIES + 1):
            try:
                return await self._finisher.submit_many(records)
            except Exception:
                log.exception("storing %d outcome(s) failed (try %d)", len(records), tries)
                await asyncio.sleep(0.5 * tries)  # a transient server-side error may pass
        return None

    async def _finish_batch(self, outcomes: Sequence[AttemptOutcome]) -> list[TaskRecord | None]:
        return await through_outages(lambda: self._store.finish_attempts(outcomes))
