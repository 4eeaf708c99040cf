"""The worker: one stream to the dispatcher, a pool of processes running the tasks it assigns.

It reconnects with backoff when the stream breaks, keeps the outcomes the dispatcher has not
acknowledged and sends them again after reconnecting, and on SIGTERM drains: it asks for no more
work, finishes what runs within a grace period, reports it, and exits.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import pickle
import socket
import time
from collections.abc import AsyncIterator

import grpc
from faas.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc

from services.common import tls
from services.common.function_cache import FunctionCache
from services.common.grpc_server import CHANNEL_OPTIONS
from services.common.jobs import job_of, outcome_message
from services.common.logs import ids
from services.common.pool import Job, Outcome, ProcessPool
from services.common.runtime import current_runtime
from services.common.streams import MAX_ITEM_BYTES, drain, split

from .credits import Credits
from .metrics import WorkerMetrics
from .settings import WorkerSettings

log = logging.getLogger(__name__)

Outbox = asyncio.Queue[dispatcher_pb2.ConnectRequest | None]

# Jobs each process holds (the one it runs and those queued behind it, sent to it in chunks);
# the rest of what the dispatcher prefetched waits here, for whichever process frees up first.
QUEUE_DEPTH = 4


class ModeMismatch(Exception):
    """The dispatcher runs another mode than the one the worker was told to insist on."""


class Worker:
    """A long-lived worker process; ``await run(stop)`` serves until ``stop`` is set."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.pool = ProcessPool(
            settings.processes,
            self._on_outcome,
            on_slot_ready=self._on_slot_ready,
            max_result_bytes=settings.max_result_bytes,
            max_output_bytes=settings.max_output_bytes,
            code_path=settings.code_paths,
            queue_depth=QUEUE_DEPTH,
            on_started=self._on_started,
            pass_env=settings.pass_env,
            run_as=settings.task_user,
            max_memory_bytes=settings.max_task_memory_mb * 1024 * 1024,
            max_cpu_seconds=settings.max_task_cpu_seconds,
        )
        # Pull mode: never more credits unanswered than the dispatcher keeps (its welcome says).
        self._credits = Credits(
            settings.processes,
            settings.prefetch * settings.processes,
            settings.processes,
            time.monotonic(),
        )
        # The bodies of functions sent on this connection, bounded; the dispatcher mirrors it.
        self._bodies = FunctionCache(settings.function_cache_bytes)
        self._backlog: collections.deque[Job] = collections.deque()
        self._unacked: dict[str, dispatcher_pb2.TaskOutcome] = {}
        self._outgoing: list[dispatcher_pb2.TaskOutcome] = []
        # Attempts a process started since the last flush: reported as started.
        self._starts: list[str] = []
        self._freed = 0
        self._flush_scheduled = False
        self._outbox: Outbox | None = None
        self._mode = ""
        self._draining = False
        self._acked = asyncio.Event()
        # Metrics only when served (--metrics-port): otherwise nothing is counted.
        self.metrics: WorkerMetrics | None = None
        if settings.metrics_port is not None:
            self.metrics = WorkerMetrics(lambda: self.pool.size)

    async def run(self, stop: asyncio.Event) -> None:
        await self.pool.start()
        settings = self.settings
        channel = tls.open_channel(
            settings.dispatcher_target,
            CHANNEL_OPTIONS,
            tls.channel_credentials(
                settings.tls_ca, settings.tls_client_cert, settings.tls_client_key
            ),
        )
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        session = asyncio.create_task(self._sessions(stub))
        try:
            await asyncio.wait(
                {session, asyncio.create_task(stop.wait())}, return_when="FIRST_COMPLETED"
            )
            if session.done():
                session.result()
            await self._drain()
        finally:
            session.cancel()
            await asyncio.gather(session, return_exceptions=True)
            await channel.close()
            await self.pool.close()

    async def _drain(self) -> None:
        grace = self.settings.drain_grace_seconds
        log.info(
            "draining: %d task(s) running, grace %.0fs", len(self.pool.running_attempts()), grace
        )
        self._draining = True
        self._flush()  # the starts so far go first: what is not started is the dispatcher's again
        self._send(dispatcher_pb2.ConnectRequest(drain=dispatcher_pb2.Drain()))
        deadline = time.monotonic() + grace
        self._backlog.clear()  # not started: the dispatcher requeues them when the stream ends
        if not await self.pool.wait_idle(grace):
            log.warning(
                "grace period over; abandoning %d task(s)", len(self.pool.running_attempts())
            )
        while self._unacked and time.monotonic() < deadline:
            self._acked.clear()
            try:
                await asyncio.wait_for(self._acked.wait(), timeout=deadline - time.monotonic())
            except TimeoutError:
                break
        log.info("drained (%d outcome(s) unacknowledged)", len(self._unacked))

    # The stream

    async def _sessions(self, stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub) -> None:
        backoff = 0.1
        while True:
            started = time.monotonic()
            try:
                await self._session(stub)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    raise
                log.warning("dispatcher stream: %s %s", exc.code().name, exc.details())
            except TimeoutError:
                log.warning("dispatcher went silent; reconnecting")
            finally:
                self._outbox = None
            if time.monotonic() - started > 5:
                backoff = 0.1
            await asyncio.sleep(backoff)  # reconnect backoff
            backoff = min(backoff * 2, self.settings.max_backoff_seconds)

    async def _session(self, stub: dispatcher_pb2_grpc.DispatcherServiceAsyncStub) -> None:
        outbox: Outbox = asyncio.Queue()
        self._bodies.clear()  # each connection starts empty, as the dispatcher's mirror does
        hello = dispatcher_pb2.WorkerHello(
            worker_id=self.settings.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            capacity=self.pool.size,
            running_attempt_ids=self.pool.running_attempts(),
            runtime=current_runtime(),
            labels=self.settings.labels,
            resources=self.settings.resources,
            function_cache_bytes=self.settings.function_cache_bytes,
        )
        outbox.put_nowait(dispatcher_pb2.ConnectRequest(hello=hello))
        token = self.settings.token
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        call = stub.Connect(_requests(outbox), metadata=metadata)
        try:
            first = await asyncio.wait_for(call.read(), timeout=10)
            if not isinstance(first, dispatcher_pb2.ConnectResponse) or not first.HasField(
                "welcome"
            ):
                raise TimeoutError
            self._on_welcome(first.welcome, outbox)
            interval = first.welcome.heartbeat_interval.ToTimedelta().total_seconds() or 1.0
            heartbeat = asyncio.create_task(self._heartbeats(outbox, interval))
            try:
                while True:
                    message = await asyncio.wait_for(call.read(), timeout=interval * 3)
                    if not isinstance(message, dispatcher_pb2.ConnectResponse):
                        return  # EOF: the dispatcher closed the stream
                    self._on_message(message)
            finally:
                heartbeat.cancel()
        finally:
            outbox.put_nowait(None)
            call.cancel()
            # Not started: the dispatcher puts them back in its queue when the stream ends.
            self._backlog.clear()
            self._starts.clear()

    def _on_welcome(self, welcome: dispatcher_pb2.Welcome, outbox: Outbox) -> None:
        if self.settings.mode and welcome.mode != self.settings.mode:
            raise ModeMismatch(
                f"worker started for {self.settings.mode} mode, dispatcher runs {welcome.mode}"
            )
        self._mode = welcome.mode
        self._outbox = outbox
        self._credits.connected(welcome.max_credits)
        if self.metrics is not None:
            self.metrics.connected()
        log.info("connected to %s (%s mode)", self.settings.dispatcher_target, welcome.mode)
        queued = set(self.pool.queued_attempts())
        started = [a for a in self.pool.running_attempts() if a not in queued]
        if started:  # their starts may not have reached the dispatcher
            starts = dispatcher_pb2.TaskStarts(attempt_ids=started)
            outbox.put_nowait(dispatcher_pb2.ConnectRequest(starts=starts))
        if self._unacked:
            log.info("re-sending %d outcome(s)", len(self._unacked))
            for batch in _batches(list(self._unacked.values())):
                outbox.put_nowait(dispatcher_pb2.ConnectRequest(outcomes=batch))
        if self._draining:
            outbox.put_nowait(dispatcher_pb2.ConnectRequest(drain=dispatcher_pb2.Drain()))
        else:
            self._request_work()

    async def _heartbeats(self, outbox: Outbox, interval: float) -> None:
        beat = dispatcher_pb2.ConnectRequest(heartbeat=dispatcher_pb2.Heartbeat())
        while True:
            await asyncio.sleep(interval)  # the heartbeat period itself
            outbox.put_nowait(beat)

    def _on_message(self, message: dispatcher_pb2.ConnectResponse) -> None:
        kind = message.WhichOneof("kind")
        if kind == "assignments":
            self._bodies.apply(message.assignments)
            assignments = message.assignments.assignments
            for a in assignments:
                log.debug(
                    "assigned attempt %s of task %s",
                    a.attempt_id,
                    a.task_id,
                    extra=ids(task_id=a.task_id, attempt_id=a.attempt_id),
                )
                self._backlog.append(job_of(a, self._bodies))
            self._credits.received(len(assignments))
            self._start_backlog()
        elif kind == "ack":
            for attempt_id in message.ack.attempt_ids:
                self._unacked.pop(attempt_id, None)
            self._acked.set()

    def _on_slot_ready(self) -> None:
        """A replaced process is ready: it takes waiting work, or (pull mode) asks for some."""
        self._start_backlog()
        self._request_work()

    def _start_backlog(self) -> None:
        while self._backlog and self.pool.accepting > 0:
            self.pool.submit(self._backlog.popleft())

    def _on_started(self, attempt_ids: list[str]) -> None:
        if self.metrics is not None:
            self.metrics.started(attempt_ids)
        self._starts.extend(attempt_ids)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and (self._starts or self._outgoing):
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    # Outcomes

    def _on_outcome(self, outcome: Outcome) -> None:
        if self.metrics is not None:
            self.metrics.ended(outcome)
        completed = outcome.status == common_pb2.TASK_STATUS_COMPLETED
        log.log(
            logging.DEBUG if completed else logging.INFO,  # a failure is worth a line
            "task %s ended %s%s",
            outcome.task_id,
            "COMPLETED" if completed else f"FAILED {_cause(outcome.cause)}",
            f" ({outcome.message})" if outcome.message else "",
            extra=ids(task_id=outcome.task_id, attempt_id=outcome.attempt_id),
        )
        message = _sendable(outcome_message(outcome))
        self._unacked[outcome.attempt_id] = message
        self._outgoing.append(message)
        self._freed += 1
        self._start_backlog()
        self._schedule_flush()

    def _flush(self) -> None:
        """Sends the starts and outcomes of one loop turn (in bounded batches), then (pull mode)
        asks for the work that keeps the processes fed."""
        self._flush_scheduled = False
        if self._starts:
            starts = dispatcher_pb2.TaskStarts(attempt_ids=self._starts)
            self._starts = []
            for part in split(starts):
                self._send(dispatcher_pb2.ConnectRequest(starts=part))
        outcomes, self._outgoing = self._outgoing, []
        if self._freed:
            self._credits.drained(self._freed, time.monotonic())
            self._freed = 0
        for batch in _batches(outcomes):
            self._send(dispatcher_pb2.ConnectRequest(outcomes=batch))
        self._request_work()

    def _request_work(self) -> None:
        """Pull mode, unless draining or disconnected: asks for what the credits allow now."""
        if self._mode != "pull" or self._draining or self._outbox is None:
            return
        held = len(self._backlog) + len(self.pool.running_attempts())
        slots = self._credits.ask(held)
        if slots > 0:
            request = dispatcher_pb2.WorkRequest(slots=slots)
            self._send(dispatcher_pb2.ConnectRequest(work_request=request))

    def _send(self, request: dispatcher_pb2.ConnectRequest) -> None:
        if self._outbox is not None:  # while disconnected, outcomes wait in _unacked
            self._outbox.put_nowait(request)


def _batches(
    outcomes: list[dispatcher_pb2.TaskOutcome],
) -> list[dispatcher_pb2.TaskOutcomeBatch]:
    if not outcomes:
        return []
    return split(dispatcher_pb2.TaskOutcomeBatch(outcomes=outcomes))


def _cause(cause: int) -> str:
    try:
        return common_pb2.FailureCause.Name(cause).removeprefix("FAILURE_CAUSE_")  # type: ignore[arg-type]
    except ValueError:
        return str(cause)


_OUTPUT_DROPPED = "\n[output truncated: dropped whole, the outcome was too large to send]\n"


def _sendable(outcome: dispatcher_pb2.TaskOutcome) -> dispatcher_pb2.TaskOutcome:
    """``outcome``, or a RESULT_TOO_LARGE failure in its place if no message could carry it."""
    size = outcome.ByteSize()
    if size <= MAX_ITEM_BYTES:
        return outcome
    if outcome.output:  # what it printed counts too: the result matters more
        trimmed = dispatcher_pb2.TaskOutcome()
        trimmed.CopyFrom(outcome)
        trimmed.output = _OUTPUT_DROPPED
        if trimmed.ByteSize() <= MAX_ITEM_BYTES:
            log.warning(
                "attempt %s: output dropped to fit a stream message",
                outcome.attempt_id,
                extra=ids(task_id=outcome.task_id, attempt_id=outcome.attempt_id),
            )
            return trimmed
    message = (
        f"the task's outcome is {size} bytes, over the {MAX_ITEM_BYTES} bytes "
        "a stream message can carry"
    )
    log.warning(
        "attempt %s: %s; reporting it as failed",
        outcome.attempt_id,
        message,
        extra=ids(task_id=outcome.task_id, attempt_id=outcome.attempt_id),
    )
    return dispatcher_pb2.TaskOutcome(
        task_id=outcome.task_id,
        attempt_id=outcome.attempt_id,
        status=common_pb2.TASK_STATUS_FAILED,
        result=pickle.dumps(ValueError(message)),
        error=common_pb2.TaskError(
            cause=common_pb2.FAILURE_CAUSE_RESULT_TOO_LARGE, message=message
        ),
    )


_BEAT = dispatcher_pb2.ConnectRequest(heartbeat=dispatcher_pb2.Heartbeat())


def _combine(into: dispatcher_pb2.ConnectRequest, other: dispatcher_pb2.ConnectRequest) -> None:
    if into.HasField("work_request"):  # slots add up; MergeFrom would keep the last count
        into.work_request.slots += other.work_request.slots
    else:
        into.MergeFrom(other)


async def _requests(outbox: Outbox) -> AsyncIterator[dispatcher_pb2.ConnectRequest]:
    async for request in drain(outbox, 3600.0, _BEAT, _combine):
        yield request
