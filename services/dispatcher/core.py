"""The dispatcher's engine: takes tasks in, starts attempts on sessions, stores outcomes.

Every state change is written to Redis (atomically, in batches) before it is acted on or
announced, so a restarted dispatcher carries on from Redis alone. Redis outages are waited out
with backoff; nothing is dropped meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from faas.v1 import common_pb2, dispatcher_pb2

from services.common.batcher import Batcher, BatchQueue
from services.common.errors import StoreUnavailable
from services.common.store import (
    AttemptOutcome,
    AttemptStart,
    LostAttempt,
    QueuedFailure,
    QueuedTask,
    Requeued,
    RequeueResult,
    RunningAttempt,
    StoreFailed,
    TaskRecord,
    TaskStore,
)
from services.common.streams import split

from .bodies import BodyCache
from .events import GatewayEvents, GatewayOutbox
from .placement import Needs
from .scheduler import Scheduler, Session, Task
from .settings import DispatcherSettings
from .sweep import StrandedSweep

log = logging.getLogger(__name__)

T = TypeVar("T")

# The function bodies kept at hand (least recently used evicted past it).
_MAX_CACHED_BODY_BYTES = 256 * 1024 * 1024
# Outcomes stored in one Redis call hold at most this many bytes of results.
_MAX_BATCH_BYTES = 64 * 1024 * 1024
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


def _outcome_record(
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
    )


def _task(spec: QueuedTask) -> Task:
    placement = common_pb2.Placement.FromString(spec.placement) if spec.placement else None
    runtime = common_pb2.Runtime.FromString(spec.runtime) if spec.runtime else None
    task = Task(spec.task_id, spec.function_id, spec.payload, spec.timeout)
    task.needs = Needs.of(placement, runtime)
    task.pending_reason = spec.pending_reason
    return task


# A pending reason that matches none, so that the next review stores the task's reason again.
_UNSTORED = "\0"
_REQUEUED = RequeueResult.REQUEUED
# Pending reasons stored in one Redis call.
_PENDING_BATCH = 500


class Dispatcher:
    """Holds the queue, the worker sessions and the gateway links of one dispatcher process."""

    def __init__(self, settings: DispatcherSettings, store: TaskStore) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = Scheduler(settings.mode)
        self.stopping = False
        self._functions = BodyCache(_MAX_CACHED_BODY_BYTES)
        self._wake = asyncio.Event()
        self.events = GatewayEvents()
        self._finisher: Batcher[AttemptOutcome, TaskRecord | None] = Batcher(
            self._finish_batch, size=lambda o: len(o.result), max_bytes=_MAX_BATCH_BYTES
        )
        # task_id -> its attempt, RUNNING before a restart and waiting for its worker.
        self._orphans: dict[str, RunningAttempt] = {}
        # Starts that workers reported, written to Redis in batches.
        self._starter: BatchQueue[tuple[Session, str, Task]] = BatchQueue(self._write_starts)
        # Attempts out of every session whose write to Redis (start, outcome, requeue) is under
        # way: the sweep leaves them alone.
        self._settling: set[str] = set()
        self._sweep = StrandedSweep()
        self._orphan_deadline = 0.0
        self._background: set[asyncio.Task[None]] = set()
        self._reconciling = asyncio.Lock()

    # Running

    async def run(self) -> None:
        """Recovers from Redis, then dispatches until cancelled."""
        await self._retry(self._recover)
        loops = [
            self._dispatch_loop(),
            self._monitor_loop(),
            self._reconcile_loop(),
            self._sweep_loop(),
            self._waiting_loop(),
        ]
        await asyncio.gather(*loops)

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background step failed", exc_info=task.exception())

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        delay = 0.1
        while True:
            try:
                return await call()
            except StoreFailed:
                raise  # Redis answered with an error: the caller decides
            except StoreUnavailable as exc:
                log.warning("redis unavailable (%s); retrying in %.1fs", exc.__cause__, delay)
                await asyncio.sleep(delay)  # backoff while Redis is away
                delay = min(delay * 2, 2.0)

    async def drain_writes(self, grace: float) -> None:
        """Waits up to ``grace`` s for outcome writes under way, so acknowledged work is stored."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=grace)

    def wake(self) -> None:
        self._wake.set()

    # Intake

    def submit(self, specs: Iterable[dispatcher_pb2.TaskSpec]) -> None:
        """Tasks from a gateway, already stored as QUEUED."""
        for spec in specs:
            timeout = spec.timeout.seconds + spec.timeout.nanos / 1e9
            task = Task(spec.task_id, spec.function_id, spec.payload, timeout or None)
            task.needs = Needs.of(
                spec.placement if spec.HasField("placement") else None,
                spec.runtime if spec.HasField("runtime") else None,
            )
            self.scheduler.add(task)
        self.wake()

    async def reconcile(self) -> None:
        """Queues the QUEUED tasks in Redis that this dispatcher does not hold yet."""
        async with self._reconciling:
            ids = [i for i in await self.store.queued_ids() if i not in self.scheduler.tasks]
            for start in range(0, len(ids), 500):
                for spec in await self.store.load_queued(ids[start : start + 500]):
                    self.scheduler.add(_task(spec))
            if ids:
                log.info("reconciled %d queued task(s) from redis", len(ids))
                self.wake()
            if self._orphans and time.monotonic() >= self._orphan_deadline:
                await self._requeue_orphans()

    async def _recover(self) -> None:
        running = await self.store.running_ids()
        self._orphans = await self.store.running_attempts(running) if running else {}
        self._orphan_deadline = time.monotonic() + self.settings.recovery_grace_seconds
        if self._orphans:
            log.info("%d task(s) were running before this start", len(self._orphans))
        await self.reconcile()

    async def _requeue_orphans(self) -> None:
        lost = [LostAttempt(t, a.attempt_id) for t, a in self._orphans.items()]
        self._orphans.clear()
        requeued = await self._requeue_and_reload(lost, "its worker did not come back")
        log.info("requeued %d task(s) whose worker did not reconnect", requeued)

    async def _requeue_and_reload(self, lost: list[LostAttempt], why: str) -> int:
        """Requeues attempts that no session holds and queues their tasks here again."""
        self._settling.update(x.attempt_id for x in lost)
        try:
            results = await self._requeue_in_redis(lost, why)
        finally:
            self._settling.difference_update(x.attempt_id for x in lost)
        self._announce_requeue(lost, results)
        ids = [x.task_id for x, r in zip(lost, results, strict=True) if r.result == _REQUEUED]
        for x, r in zip(lost, results, strict=True):
            if r.result == RequeueResult.FAILED:
                self.scheduler.forget(x.task_id)
        for task_id in ids:
            self.scheduler.forget(task_id)  # held in a stale state, if at all
        for spec in await self._retry(lambda: self.store.load_queued(ids)):
            self.scheduler.add(_task(spec))
        self.wake()
        return len(ids)

    # Stranded tasks

    async def sweep(self) -> int:
        """Requeues the RUNNING tasks whose attempt nothing here holds (two sweeps in a row)."""
        running_ids = await self.store.running_ids()
        running = await self.store.running_attempts(running_ids) if running_ids else {}
        stranded = self._sweep.check(
            {t: a.attempt_id for t, a in running.items()}, self._held_attempts()
        )
        if not stranded:
            return 0
        log.warning("%d task(s) were RUNNING under an attempt nothing held", len(stranded))
        return await self._requeue_and_reload(stranded, "nothing held its attempt")

    def _held_attempts(self) -> set[str]:
        held = set(self._settling)
        held.update(a.attempt_id for a in self._orphans.values())
        for session in self.scheduler.sessions.values():
            held.update(session.in_flight)
            held.update(session.adopting)
        return held

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_seconds)  # periodic safety net
            if self.stopping:
                continue
            try:
                await self.sweep()
            except StoreUnavailable as exc:
                log.warning("sweep skipped: %s", exc)

    # Tasks no worker can take

    async def _waiting_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)  # as often as liveness checks
            if self.stopping:
                continue
            try:
                await self.review_waiting()
            except Exception:
                log.exception("reviewing the waiting tasks failed")  # tried again next period

    async def review_waiting(self) -> None:
        """Stores why queued tasks wait, and fails those no worker could take for too long."""
        review = self.scheduler.review(time.monotonic(), self.settings.no_worker_timeout_seconds)
        await self._store_reasons(review.reasons)
        if review.expired:
            await self._fail_unplaceable(review.expired)

    async def _store_reasons(self, reasons: list[tuple[Task, str]]) -> None:
        """Stores changed pending reasons; those not stored are tried again at the next review."""
        for start in range(0, len(reasons), _PENDING_BATCH):
            part = reasons[start : start + _PENDING_BATCH]
            try:
                await self.store.set_pending([(t.task_id, r) for t, r in part])
            except Exception as exc:
                for task, _ in reasons[start:]:
                    task.pending_reason = _UNSTORED
                log.warning("pending reasons not stored: %s", exc)
                return

    async def _fail_unplaceable(self, tasks: list[Task]) -> None:
        """FAILS tasks (taken out of the queue) that no connected worker could take in time."""
        wait = self.settings.no_worker_timeout_seconds
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
            failed = await self._retry(lambda: self.store.fail_queued(failures))
        except BaseException:
            for task in tasks:  # not stored: they stay queued, and are reviewed again
                self.scheduler.requeue(task)
            raise
        for task, record in zip(tasks, failed, strict=True):
            self.scheduler.forget(task.task_id)  # FAILED now, or no longer QUEUED anyway
            if record is not None:
                self.events.emit_state(record)

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_seconds)  # periodic safety net
            try:
                await self.reconcile()
            except StoreUnavailable as exc:
                log.warning("reconcile skipped: %s", exc)

    # Sessions

    def live_session(self, worker_id: str) -> Session | None:
        """The session of ``worker_id`` if it is connected and heard from recently."""
        session = self.scheduler.sessions.get(worker_id)
        if session is None or session.closed:
            return None
        if time.monotonic() - session.last_seen > self.settings.dead_after_seconds:
            return None
        return session

    def attach(self, session: Session, running_attempt_ids: Sequence[str]) -> list[str]:
        """Adds a session; adopts attempts it still runs from before a dispatcher restart.

        Only attempts recorded for the session's worker id are adopted. A stale session of the
        same worker id (one that stopped heartbeating) is closed for good; callers refuse a
        hello whose worker id has a live session (see :meth:`live_session`).
        """
        old = self.scheduler.sessions.get(session.worker_id)
        if old is not None:  # the same worker reconnected before its old stream was reaped
            for attempt_id in running_attempt_ids:
                if attempt_id in old.in_flight:
                    session.in_flight[attempt_id] = old.in_flight.pop(attempt_id)
                    if attempt_id in old.deadlines:
                        session.deadlines[attempt_id] = old.deadlines.pop(attempt_id)
                    if attempt_id in old.unstarted:  # its start comes again after the welcome
                        session.unstarted[attempt_id] = old.unstarted.pop(attempt_id)
                        if attempt_id in old.starting:
                            session.starting.add(attempt_id)  # its write is under way
            if old.link is not None:
                old.link.close()  # really end its stream, not only forget it
            self.spawn(self.lose(old, "it reconnected"))
        by_attempt = {
            a.attempt_id: t for t, a in self._orphans.items() if a.worker_id == session.worker_id
        }
        adopt = [by_attempt[a] for a in running_attempt_ids if a in by_attempt]
        self.scheduler.attach(session)
        if adopt:
            for task_id in adopt:
                session.adopting.add(self._orphans.pop(task_id).attempt_id)
            self.spawn(self._adopt(session, adopt))
        self.wake()
        return adopt

    async def _adopt(self, session: Session, task_ids: list[str]) -> None:
        specs = await self._retry(lambda: self.store.load_queued(task_ids, status="RUNNING"))
        attempts = await self._retry(lambda: self.store.running_attempts(task_ids))
        for spec in specs:
            running = attempts.get(spec.task_id)
            attempt_id = running.attempt_id if running is not None else None
            # Not if its outcome came in meanwhile (report() took it out of `adopting`).
            if attempt_id is not None and attempt_id in session.adopting and not session.closed:
                session.adopting.discard(attempt_id)
                task = _task(spec)
                self.scheduler.tasks[task.task_id] = task
                session.in_flight[attempt_id] = task
                self._set_deadline(session, attempt_id, task)
        log.info("worker %s kept %d running task(s)", session.worker_id, len(specs))

    async def lose(self, session: Session, reason: str) -> None:
        """A session ended: its in-flight tasks go back to the queue (or FAILED)."""
        self.scheduler.detach(session)
        # The writes of starts under way settle theirs (_write_starts).
        prefetched, lost_items = session.release_all()
        for _, task in prefetched:  # QUEUED in Redis all along: back to the queue, no write
            self.scheduler.requeue(task)
        if prefetched:
            log.info(
                "worker %s: %d prefetched task(s) requeued", session.worker_id, len(prefetched)
            )
            self.wake()
        if self.stopping or not lost_items:
            return  # on shutdown they stay RUNNING for the next dispatcher to adopt
        log.warning(
            "worker %s lost (%s): %d task(s) in flight", session.worker_id, reason, len(lost_items)
        )
        lost = [LostAttempt(task.task_id, attempt) for attempt, task in lost_items]
        self._settling.update(session_attempts := [a for a, _ in lost_items])
        try:
            results = await self._requeue_in_redis(lost, f"worker {session.worker_id} was lost")
        finally:
            self._settling.difference_update(session_attempts)
        for (_attempt, task), result in zip(lost_items, results, strict=True):
            if result.result == _REQUEUED:
                self.scheduler.requeue(task)
            else:
                self.scheduler.forget(task.task_id)
        self._announce_requeue(lost, results)
        self.wake()

    async def _requeue_in_redis(
        self, lost: Sequence[LostAttempt], why: str, cause: str = "WORKER_LOST"
    ) -> list[Requeued]:
        message = f"task failed: {why} on each of its attempts"
        error = RuntimeError(message) if cause == "WORKER_LOST" else ChildProcessError(message)
        final = pickle.dumps(error)
        return await self._retry(
            lambda: self.store.requeue_attempts(
                lost,
                max_attempts=self.settings.max_attempts,
                final_result=final,
                final_message=message,
                final_cause=cause,
            )
        )

    def _announce_requeue(self, lost: Sequence[LostAttempt], results: Sequence[Requeued]) -> None:
        for item, result in zip(lost, results, strict=True):
            if result.result == _REQUEUED:
                self.events.emit(item.task_id, common_pb2.TASK_STATUS_QUEUED)
            elif result.record is not None:
                self.events.emit_state(result.record)

    # Dispatching

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            plan = self.scheduler.plan()
            if not plan:
                continue
            try:
                await self._start(plan)
            except Exception:
                # A bug must not stop dispatching: the tasks go back to the queue.
                log.exception("starting %d task(s) failed; requeueing them", len(plan))
                for session, task in plan:
                    self.scheduler.unreserve(session, task)
                await asyncio.sleep(1.0)  # do not spin on a persistent fault
                self.wake()

    async def _start(self, plan: list[tuple[Session, Task]]) -> None:
        """Assigns planned tasks: attempts that Redis records as started only once a process
        starts them (see :meth:`started`), so nothing is written here."""
        bodies: dict[str, bytes] = {}
        for function_id in {task.function_id for _, task in plan}:
            body = self._functions.get(function_id)
            bodies[function_id] = await self._function_body(function_id) if body is None else body
        now = time.monotonic()
        by_session: defaultdict[Session, list[tuple[str, Task]]] = defaultdict(list)
        for session, task in plan:
            if session.closed:
                self.scheduler.unreserve(session, task)
                continue
            attempt_id = uuid.uuid4().hex
            session.hold(attempt_id, task, now)
            by_session[session].append((attempt_id, task))
        for session, items in by_session.items():
            self._deliver(session, items, bodies)
        self.wake()

    def _deliver(
        self, session: Session, items: list[tuple[str, Task]], payloads: dict[str, bytes]
    ) -> None:
        bodies: list[dispatcher_pb2.FunctionBody] = []
        for function_id in {task.function_id for _, task in items}:
            if function_id in session.functions_sent:
                continue
            payload = payloads.get(function_id, b"")
            bodies.append(dispatcher_pb2.FunctionBody(function_id=function_id, payload=payload))
            session.functions_sent.add(function_id)
        assignments = [
            dispatcher_pb2.Assignment(
                task_id=task.task_id,
                attempt_id=attempt_id,
                function_id=task.function_id,
                payload=task.payload,
            )
            for attempt_id, task in items
        ]
        for assignment, (_, task) in zip(assignments, items, strict=True):
            if task.timeout:
                assignment.timeout.FromNanoseconds(int(task.timeout * 1e9))
        if session.link is not None:
            batch = dispatcher_pb2.AssignmentBatch(functions=bodies, assignments=assignments)
            for part in split(batch):
                session.link.deliver(part)

    # Starts

    def started(self, session: Session, attempt_ids: Iterable[str]) -> None:
        """A session's processes started these attempts: Redis records them RUNNING (batched).

        Attempts the session does not hold, or whose start is known already, are ignored. The
        dispatcher's own deadline for a timed task counts from here.
        """
        now = time.monotonic()
        items = []
        for attempt_id in attempt_ids:
            if attempt_id not in session.unstarted or attempt_id in session.starting:
                continue
            session.starting.add(attempt_id)
            task = session.in_flight[attempt_id]
            self._set_deadline(session, attempt_id, task, now)
            items.append((session, attempt_id, task))
        if items:
            self._settling.update(attempt_id for _, attempt_id, _ in items)
            self._starter.add(items)

    async def _write_starts(self, items: list[tuple[Session, str, Task]]) -> None:
        starts = [AttemptStart(t.task_id, a, s.worker_id) for s, a, t in items]
        attempt_ids = [attempt_id for _, attempt_id, _ in items]
        try:
            # A timed-out write is retried with the same attempts; a start that landed reports
            # itself as started.
            landed = await self._retry(lambda: self.store.start_attempts(starts))
            stranded: list[tuple[str, Task]] = []
            for (session, attempt_id, task), ok in zip(items, landed, strict=True):
                session.starting.discard(attempt_id)
                holder: Session | None = session
                if session.closed:  # lost, or its worker reconnected (and kept it?)
                    current = self.scheduler.sessions.get(session.worker_id)
                    holder = current if current and attempt_id in current.in_flight else None
                if holder is None:
                    if ok:
                        stranded.append((attempt_id, task))  # RUNNING now, and nobody's
                    else:
                        self.scheduler.forget(task.task_id)  # not QUEUED: it moved on
                    continue
                holder.starting.discard(attempt_id)
                if attempt_id not in holder.in_flight:
                    continue  # its outcome came first (and was stored with it), or taken back
                if ok:
                    holder.unstarted.pop(attempt_id, None)
                    self.events.emit(task.task_id, common_pb2.TASK_STATUS_RUNNING)
                else:  # not QUEUED in Redis: it ended or moved on; its outcome will be refused
                    holder.release(attempt_id)
                    self.scheduler.forget(task.task_id)
            if stranded:
                gone = Session("", "", 0, 0, self.settings.mode, in_flight=dict(stranded))
                await self.lose(gone, "it disconnected while its tasks were starting")
        finally:
            self._settling.difference_update(attempt_ids)
            self.wake()

    def drain(self, session: Session) -> None:
        """A worker drains: the prefetched attempts it did not start go back to the queue now."""
        session.draining = True
        self._take_back(session, session.waiting())

    def _take_back(self, session: Session, attempt_ids: list[str]) -> None:
        for attempt_id in attempt_ids:
            task, _ = session.release(attempt_id)
            if task is not None:
                self.scheduler.requeue(task)
        if attempt_ids:
            self.wake()

    async def _function_body(self, function_id: str) -> bytes:
        payload = await self._retry(lambda: self.store.get_function_payload(function_id))
        if payload:
            self._functions.put(function_id, payload)
        return payload or b""

    # Outcomes

    def _may_report(self, session: Session, outcome: dispatcher_pb2.TaskOutcome) -> bool:
        """Whether the session holds the attempt: given to it, adopted, or its own orphan."""
        attempt_id = outcome.attempt_id
        if attempt_id in session.in_flight or attempt_id in session.adopting:
            return True
        orphan = self._orphans.get(outcome.task_id)
        return (
            orphan is not None
            and orphan.attempt_id == attempt_id
            and orphan.worker_id == session.worker_id
        )

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
            if not self._may_report(session, outcome):
                refused.append(outcome.attempt_id)
                continue
            session.adopting.discard(outcome.attempt_id)
            task, was_unstarted = session.release(outcome.attempt_id)
            if was_unstarted:
                unstarted.add(outcome.attempt_id)  # Redis may not record its start
            if task is not None and self._retries(outcome):
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
        self.wake()
        if refused:
            log.warning(
                "worker %s reported %d attempt(s) it does not hold; ignored",
                session.worker_id,
                len(refused),
            )
            if session.link is not None and not session.closed:
                session.link.acknowledge(refused)
        if final:
            self.spawn(self._store_outcomes(session, final, unstarted))
        if crashed:
            self.spawn(self._retry_crashed(session, crashed))

    def _retries(self, outcome: dispatcher_pb2.TaskOutcome) -> bool:
        return (
            self.settings.retry_process_death
            and outcome.status == common_pb2.TASK_STATUS_FAILED
            and outcome.error.cause == common_pb2.FAILURE_CAUSE_PROCESS_DIED
        )

    async def _retry_crashed(self, session: Session, crashed: list[tuple[str, Task]]) -> None:
        """Process deaths, when configured to retry: the tasks go back to the queue."""
        lost = [LostAttempt(task.task_id, attempt) for attempt, task in crashed]
        try:
            results = await self._requeue_in_redis(lost, "its process died", "PROCESS_DIED")
        finally:
            self._settling.difference_update(attempt for attempt, _ in crashed)
        for (_attempt, task), result in zip(crashed, results, strict=True):
            if result.result == _REQUEUED:
                self.scheduler.requeue(task)
            else:
                self.scheduler.forget(task.task_id)
                session.failed += result.result == RequeueResult.FAILED
        self._announce_requeue(lost, results)
        if session.link is not None and not session.closed:
            session.link.acknowledge([attempt for attempt, _ in crashed])
        self.wake()

    async def _store_outcomes(
        self,
        session: Session,
        outcomes: list[dispatcher_pb2.TaskOutcome],
        unstarted: set[str] | None = None,
    ) -> None:
        try:
            records = [
                _outcome_record(o, o.attempt_id in unstarted, session.worker_id)
                if unstarted
                else _outcome_record(o)
                for o in outcomes
            ]
            applied = await self._store_records(records)
        finally:
            self._settling.difference_update(o.attempt_id for o in outcomes)
        if applied is None:
            return  # not acknowledged: the worker sends them again, the sweep requeues them
        for stored in applied:
            if stored is not None:
                self.scheduler.forget(stored.task_id)
                self._orphans.pop(stored.task_id, None)
                self.events.emit_state(stored)
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
        return await self._retry(lambda: self.store.finish_attempts(outcomes))

    # Events to gateways

    def add_gateway(self, outbox: GatewayOutbox) -> None:
        self.events.add(outbox)
        self.spawn(self._reconcile_quietly())

    def remove_gateway(self, outbox: GatewayOutbox) -> None:
        self.events.remove(outbox)

    async def _reconcile_quietly(self) -> None:
        try:
            await self.reconcile()
        except StoreUnavailable as exc:
            log.warning("reconcile skipped: %s", exc)

    # Liveness

    async def _monitor_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)  # the heartbeat period itself
            now = time.monotonic()
            limit = now - self.settings.dead_after_seconds
            for session in list(self.scheduler.sessions.values()):
                if session.remote and session.last_seen < limit:
                    log.warning("worker %s missed its heartbeats", session.worker_id)
                    if session.link is not None:
                        session.link.close()
                session.retarget(now)
                self._expire_overdue(session, now)
                self._take_back_stalled(session, now)

    def _take_back_stalled(self, session: Session, now: float) -> None:
        """A worker that leaves prefetched tasks unstarted while a process of its is free (for
        the timeout grace) loses them: they go back to the queue."""
        waiting = session.waiting()
        if not waiting or session.busy() >= session.capacity:
            session.stalled_since = None
            return
        if session.stalled_since is None:
            session.stalled_since = now
            return
        if now - session.stalled_since < self.settings.timeout_grace_seconds:
            return
        session.stalled_since = None
        log.warning(
            "worker %s left %d prefetched task(s) unstarted with a process free; requeued",
            session.worker_id,
            len(waiting),
        )
        self._take_back(session, waiting)

    # Timeouts the dispatcher enforces itself

    def _set_deadline(
        self, session: Session, attempt_id: str, task: Task, start: float | None = None
    ) -> None:
        """The dispatcher's own limit for a timed attempt: from its start, timeout plus grace."""
        if task.timeout and session.remote:
            grace = self.settings.timeout_grace_seconds
            begun = time.monotonic() if start is None else start
            session.deadlines[attempt_id] = begun + task.timeout + grace

    def _expire_overdue(self, session: Session, now: float) -> None:
        """A worker holding a task past its timeout plus a grace loses it: it FAILS TIMEOUT."""
        overdue = [a for a, deadline in session.deadlines.items() if deadline <= now]
        expired: list[dispatcher_pb2.TaskOutcome] = []
        unstarted: set[str] = set()
        for attempt_id in overdue:
            task, was_unstarted = session.release(attempt_id)
            if task is None:
                continue
            if was_unstarted:
                unstarted.add(attempt_id)
            session.failed += 1
            self._settling.add(attempt_id)
            message = (
                f"worker {session.worker_id} held the task past its time limit of "
                f"{task.timeout:g} s plus a grace of {self.settings.timeout_grace_seconds:g} s"
            )
            error = common_pb2.TaskError(cause=common_pb2.FAILURE_CAUSE_TIMEOUT, message=message)
            expired.append(
                dispatcher_pb2.TaskOutcome(
                    task_id=task.task_id,
                    attempt_id=attempt_id,
                    status=common_pb2.TASK_STATUS_FAILED,
                    result=pickle.dumps(TimeoutError(message)),
                    error=error,
                )
            )
        if expired:
            log.warning("worker %s overran %d task(s)", session.worker_id, len(expired))
            gone = Session(session.worker_id, "", 0, 0, self.settings.mode)  # no acks to send
            gone.closed = True
            self.spawn(self._store_outcomes(gone, expired, unstarted))
            self.wake()

    def worker_stats(self) -> list[common_pb2.WorkerStats]:
        out = []
        for s in self.scheduler.sessions.values():
            stats = common_pb2.WorkerStats(
                worker_id=s.worker_id,
                host=s.host,
                pid=s.pid,
                capacity=s.capacity,
                in_flight=len(s.in_flight),
                assigned=s.assigned,
                completed=s.completed,
                failed=s.failed,
                mode=s.mode,
                draining=s.draining,
                runtime=s.runtime,
                labels=s.labels,
                resources=s.resources,
            )
            stats.connected_time.FromMilliseconds(int(s.connected_at * 1000))
            out.append(stats)
        return out
