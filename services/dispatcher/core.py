"""The dispatcher's engine: takes tasks in, starts attempts on sessions, stores outcomes.

Every state change is written to Redis (atomically, in batches) before it is acted on or
announced, so a restarted dispatcher carries on from Redis alone. Redis outages are waited out
with backoff; nothing is dropped meanwhile.

The engine runs the loops and wires its parts, each a module of its own: recovery and adoption
(:mod:`.recovery`), starts (:mod:`.starts`), outcomes (:mod:`.outcomes`), lost attempts
(:mod:`.loss`), liveness (:mod:`.liveness`), tasks no worker can take (:mod:`.unplaceable`) and
events to gateways (:mod:`.events`); who gets which task is the scheduler's (:mod:`.scheduler`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Sequence

from faas.v1 import common_pb2, dispatcher_pb2

from services.common.errors import StoreUnavailable
from services.common.logs import ids
from services.common.store import TaskStore
from services.common.streams import split

from . import liveness
from .backoff import through_outages
from .bodies import BodyCache
from .events import GatewayEvents, GatewayOutbox
from .loss import Loss
from .metrics import DispatcherMetrics
from .outcomes import Outcomes
from .outcomes import outcome_record as _outcome_record  # noqa: F401 (tests/unit/test_sweep.py)
from .placement import Needs
from .presence import PresenceReporter
from .recovery import Recovery
from .scheduler import Scheduler, Session, Task
from .settings import DispatcherSettings
from .starts import Starts
from .unplaceable import Unplaceable

log = logging.getLogger(__name__)

# The function bodies kept at hand (least recently used evicted past it).
_MAX_CACHED_BODY_BYTES = 256 * 1024 * 1024


class Dispatcher:
    """Holds the queue, the worker sessions and the gateway links of one dispatcher process."""

    def __init__(self, settings: DispatcherSettings, store: TaskStore) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = Scheduler(settings.mode)
        self.stopping = False
        # Metrics only when served (--metrics-port): otherwise nothing is counted.
        self.metrics: DispatcherMetrics | None = None
        self.events = GatewayEvents()
        if settings.metrics_port is not None:
            self.metrics = DispatcherMetrics(self.scheduler, settings.slow_wait_seconds)
            self.events = self.metrics.events()
        self._functions = BodyCache(_MAX_CACHED_BODY_BYTES)
        self._wake = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        # Attempts out of every session whose write to Redis (start, outcome, requeue) is under
        # way: the sweep leaves them alone.
        self._settling: set[str] = set()
        parts = (settings, store, self.scheduler)
        self.loss = Loss(*parts, self.events, self._settling, self.wake, lambda: self.stopping)
        self.recovery = Recovery(*parts, self.loss, self._settling, self.spawn, self.wake)
        self.starts = Starts(*parts, self.events, self.loss, self._settling, self.wake)
        self.outcomes = Outcomes(
            *parts, self.events, self.loss, self.recovery, self._settling, self.spawn, self.wake
        )
        self.unplaceable = Unplaceable(*parts, self.events)
        self.presence = PresenceReporter(settings, store, self.scheduler)

    # Running

    async def run(self) -> None:
        """Recovers from Redis, then dispatches until cancelled."""
        await through_outages(self.recovery.recover)
        loops = [
            self._dispatch_loop(),
            self._monitor_loop(),
            self._reconcile_loop(),
            self._sweep_loop(),
            self._waiting_loop(),
            self.presence.run(),
        ]
        await asyncio.gather(*loops)

    def spawn(self, coro: Awaitable[None]) -> None:
        """Runs a step in the background (awaited by :meth:`drain_writes` on shutdown)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background step failed", exc_info=task.exception())

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
            task = Task(
                spec.task_id,
                spec.function_id,
                spec.payload,
                timeout or None,
                memory_limit_mb=spec.placement.memory_limit_mb,
                cpu_limit_seconds=spec.placement.cpu_limit_seconds,
            )
            task.needs = Needs.of(
                spec.placement if spec.HasField("placement") else None,
                spec.runtime if spec.HasField("runtime") else None,
            )
            self.scheduler.add(task)
        self.wake()

    async def reconcile(self) -> None:
        """Queues the QUEUED tasks in Redis that this dispatcher does not hold yet."""
        await self.recovery.reconcile()

    async def sweep(self) -> int:
        """Requeues the RUNNING tasks whose attempt nothing here holds (two sweeps in a row)."""
        return await self.recovery.sweep()

    async def review_waiting(self) -> None:
        """Stores why queued tasks wait, and fails those no worker could take for too long."""
        await self.unplaceable.review()

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_seconds)  # periodic safety net
            try:
                await self.reconcile()
            except StoreUnavailable as exc:
                log.warning("reconcile skipped: %s", exc)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_seconds)  # periodic safety net
            if self.stopping:
                continue
            try:
                await self.sweep()
            except StoreUnavailable as exc:
                log.warning("sweep skipped: %s", exc)

    async def _waiting_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)  # as often as liveness checks
            if self.stopping:
                continue
            try:
                await self.review_waiting()
            except Exception:
                log.exception("reviewing the waiting tasks failed")  # tried again next period

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
        """Adds a session; adopts attempts it still runs from before a dispatcher restart
        (see :meth:`Recovery.attach`); callers refuse a hello whose worker id has a live
        session (see :meth:`live_session`)."""
        if self.metrics is not None:
            self.metrics.connects.inc()
        return self.recovery.attach(session, running_attempt_ids)

    async def lose(self, session: Session, reason: str) -> None:
        """A session ended: its in-flight tasks go back to the queue (or FAILED)."""
        if self.metrics is not None:
            self.metrics.disconnects.inc()
        await self.loss.lose(session, reason)

    def started(self, session: Session, attempt_ids: Iterable[str]) -> None:
        """A session's processes started these attempts (see :meth:`Starts.started`)."""
        started = self.starts.started(session, attempt_ids)
        if self.metrics is not None:
            self.metrics.started.inc(started)

    def report(self, session: Session, outcomes: Sequence[dispatcher_pb2.TaskOutcome]) -> None:
        """Outcomes from a session (see :meth:`Outcomes.report`)."""
        self.outcomes.report(session, outcomes)

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
        # Every body the batch needs goes with it; the link drops those the worker holds
        # when the batch is sent (see WorkerStream.sent), so the worker's cache and its
        # mirror here see the same batches.
        bodies = [
            dispatcher_pb2.FunctionBody(
                function_id=function_id, payload=payloads.get(function_id, b"")
            )
            for function_id in dict.fromkeys(task.function_id for _, task in items)
        ]
        assignments = [
            dispatcher_pb2.Assignment(
                task_id=task.task_id,
                attempt_id=attempt_id,
                function_id=task.function_id,
                payload=task.payload,
                memory_limit_mb=task.memory_limit_mb,
                cpu_limit_seconds=task.cpu_limit_seconds,
            )
            for attempt_id, task in items
        ]
        debug = log.isEnabledFor(logging.DEBUG)
        for assignment, (attempt_id, task) in zip(assignments, items, strict=True):
            if task.timeout:
                assignment.timeout.FromNanoseconds(int(task.timeout * 1e9))
            if debug:
                log.debug(
                    "task %s assigned to worker %s",
                    task.task_id,
                    session.worker_id,
                    extra=ids(task.task_id, session.worker_id, attempt_id),
                )
        if session.link is not None:
            batch = dispatcher_pb2.AssignmentBatch(functions=bodies, assignments=assignments)
            for part in split(batch):
                session.link.deliver(part)

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
        payload = await through_outages(lambda: self.store.get_function_payload(function_id))
        if payload:
            self._functions.put(function_id, payload)
        return payload or b""

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
            grace = self.settings.timeout_grace_seconds
            limit = now - self.settings.dead_after_seconds
            for session in list(self.scheduler.sessions.values()):
                if session.remote and session.last_seen < limit:
                    log.warning(
                        "worker %s missed its heartbeats",
                        session.worker_id,
                        extra=ids(worker_id=session.worker_id),
                    )
                    if session.link is not None:
                        session.link.close()
                session.retarget(now)
                self._expire_overdue(session, now)
                stalled = liveness.take_stalled(session, now, grace)
                if stalled:
                    log.warning(
                        "worker %s left %d prefetched task(s) unstarted with a process free; "
                        "requeued",
                        session.worker_id,
                        len(stalled),
                    )
                    self._take_back(session, stalled)

    def _expire_overdue(self, session: Session, now: float) -> None:
        """A worker holding a task past its timeout plus a grace loses it: it FAILS TIMEOUT."""
        grace = self.settings.timeout_grace_seconds
        expired, unstarted = liveness.expire_overdue(session, now, grace)
        if expired:
            self._settling.update(o.attempt_id for o in expired)
            log.warning(
                "worker %s overran %d task(s)",
                session.worker_id,
                len(expired),
                extra=ids(worker_id=session.worker_id),
            )
            gone = Session(session.worker_id, "", 0, 0, self.settings.mode)  # no acks to send
            gone.closed = True
            self.spawn(self.outcomes.store(gone, expired, unstarted))
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
            age = time.monotonic() - s.last_seen if s.remote else 0.0  # local: this process
            stats.heartbeat_age.FromMilliseconds(int(age * 1000))
            out.append(stats)
        return out
