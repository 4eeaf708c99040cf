"""Long polls answered from one WatchTasks stream that the shim keeps to the gateway.

``GET /result/{id}?wait=`` waits here for the task's terminal state instead of holding a GetResult
call of its own: each task id goes on the shared stream once, and the gateway answers with
batches of states. The stream is opened when a wait needs it. One that breaks after it answered
(a gateway restart) is re-opened at once with every id still waited for; one that breaks before
answering hands its waits back (``Miss.DOWN``) so that the caller falls back to the unary
GetResult, and the stream is left down for a backoff, during which waits are not taken here.

The ids of the tasks the shim has just queued are watched ahead (``expect``), all of one execute
call in one request: their long polls then find the terminal state already here (kept for
``ENDED_SECONDS``, at most ``ENDED_BYTES`` of them), or wait for it with nothing more to send.
Everything runs on the shim's event loop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Final

import grpc
from faas.v1 import common_pb2, gateway_pb2

from services.gateway.limits import MAX_ID_CHARS

__all__ = ["ENDED_BYTES", "ENDED_SECONDS", "Miss", "ResultWatch", "WatchCounts"]

logger = logging.getLogger(__name__)

_IDS_PER_REQUEST: Final = 4096
_MAX_WATCHED: Final = 100_000  # ids on one stream; past it, waits use the unary GetResult
_BACKOFF_SECONDS: Final = (0.1, 0.5, 1.0, 2.0, 5.0)
ENDED_SECONDS: Final = 30.0
"""How long a watched-ahead task's terminal state (or the wish to see it) is kept."""

ENDED_BYTES: Final = 32 * 1024 * 1024
"""The most result and error bytes the terminal states kept for long polls hold together."""

_TERMINAL: Final = frozenset({common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED})

Requests = asyncio.Queue[gateway_pb2.WatchTasksRequest | None]
OpenStream = Callable[
    [AsyncIterator[gateway_pb2.WatchTasksRequest]],
    grpc.aio.StreamStreamCall[gateway_pb2.WatchTasksRequest, gateway_pb2.WatchTasksResponse],
]


class Miss(enum.Enum):
    """Why a wait ended without a terminal state: the caller then asks GetResult itself."""

    TIMEOUT = "timeout"  # the wait bound passed (or the shim is stopping): answer the state now
    UNKNOWN = "unknown"  # the gateway knows no such task: GetResult answers its NOT_FOUND
    DOWN = "down"  # the stream is not there: long-poll with GetResult for the time left


@dataclass(slots=True)
class WatchCounts:
    """Waits answered from the stream, and streams opened."""

    waits: int = 0  # long polls taken (or tried) here
    answered: int = 0
    streams: int = 0
    ahead: int = 0  # ids watched ahead, as their execute answered
    found: int = 0  # long polls that found the terminal state already here


class ResultWatch:
    """Waiters keyed by task id, answered from one WatchTasks stream."""

    def __init__(self, open_stream: OpenStream) -> None:
        self._open_stream = open_stream
        self._waiters: dict[str, list[asyncio.Future[common_pb2.TaskState | Miss]]] = {}
        self._watched: set[str] = set()  # ids sent on the current stream, not yet ended
        self._expected: OrderedDict[str, float] = OrderedDict()  # watched ahead -> since
        self._ended: OrderedDict[str, tuple[common_pb2.TaskState, float, int]] = OrderedDict()
        self._ended_bytes = 0
        self._new: list[str] = []  # ids not yet sent on the current stream
        self._flush_scheduled = False
        self._requests: Requests | None = None
        self._runner: asyncio.Task[None] | None = None
        self._failures = 0
        self._down_until = 0.0
        self._stopped = False
        self.counts = WatchCounts()

    @property
    def idle(self) -> bool:
        """Whether no long poll waits here."""
        return not self._waiters

    def takes(self, task_id: str) -> bool:
        """Whether a wait for ``task_id`` can be answered here now (else: the unary GetResult).

        An id the gateway would refuse (empty, too long, not UTF-8) would end the shared stream
        for everyone; it goes to GetResult, which answers its error as before.
        """
        if self._stopped or time.monotonic() < self._down_until:
            return False
        if not task_id or len(task_id) > MAX_ID_CHARS:
            return False
        if task_id not in self._watched and len(self._watched) >= _MAX_WATCHED:
            return False
        try:
            task_id.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    async def wait(self, task_id: str, seconds: float) -> common_pb2.TaskState | Miss:
        """The task's terminal state once the gateway sends it, else why not (a ``Miss``)."""
        self.counts.waits += 1
        ended = self._ended.pop(task_id, None)
        if ended is not None:
            self._ended_bytes -= ended[2]
            if ended[1] > time.monotonic() - ENDED_SECONDS:
                self.counts.found += 1
                return ended[0]
        if not self.takes(task_id):
            return Miss.DOWN
        loop = asyncio.get_running_loop()
        future: asyncio.Future[common_pb2.TaskState | Miss] = loop.create_future()
        self._waiters.setdefault(task_id, []).append(future)
        self._send([task_id], loop)
        try:
            async with asyncio.timeout(seconds):
                return await future
        except TimeoutError:
            return Miss.TIMEOUT
        finally:
            self._drop(task_id, future)

    def expect(self, task_ids: Iterable[str]) -> None:
        """Watches ahead the tasks just queued (ids the gateway made), so that their long polls
        find their end here; nothing when the stream is down."""
        now = time.monotonic()
        if self._stopped or now < self._down_until:
            return
        _prune(self._expected, now - ENDED_SECONDS)
        ids = [i for i in task_ids if i not in self._expected]
        if len(self._watched) + len(ids) > _MAX_WATCHED:
            return
        for task_id in ids:
            self._expected[task_id] = now
        self.counts.ahead += len(ids)
        self._send(ids, asyncio.get_running_loop())

    def _send(self, task_ids: list[str], loop: asyncio.AbstractEventLoop) -> None:
        """Puts on the stream the ids it does not watch yet (opening it if need be)."""
        if self._runner is None:
            self._new.clear()  # a new stream starts with every waited and expected id
            self._runner = loop.create_task(self._run(), name="rest-watch-tasks")
            return
        for task_id in task_ids:
            if task_id not in self._watched:
                self._watched.add(task_id)
                self._new.append(task_id)
        if self._new and not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)

    def stop(self) -> None:
        """The shim is stopping: every wait ends now (``Miss.TIMEOUT``), and no new one starts."""
        self._stopped = True
        self._end_all(Miss.TIMEOUT)

    async def close(self) -> None:
        """Ends the stream (and every wait, as ``Miss.TIMEOUT``)."""
        self.stop()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)

    # --- the stream --------------------------------------------------------------------------

    def _drop(self, task_id: str, future: asyncio.Future[common_pb2.TaskState | Miss]) -> None:
        waiting = self._waiters.get(task_id)
        if waiting is None:
            return
        if future in waiting:
            waiting.remove(future)
        if not waiting:
            del self._waiters[task_id]  # the gateway may still watch it: its end is dropped

    def _end_all(self, miss: Miss) -> None:
        waiters, self._waiters = self._waiters, {}
        for waiting in waiters.values():
            for future in waiting:
                if not future.done():
                    future.set_result(miss)

    def _flush(self) -> None:
        self._flush_scheduled = False
        ids, self._new = self._new, []
        if self._requests is not None:  # else the next stream opens with every waited id
            _put(self._requests, ids)

    async def _run(self) -> None:
        try:
            while (self._waiters or self._expected) and not self._stopped:
                replied = await self._stream()
                if replied:
                    self._failures = 0
                    continue  # re-watch at once what is still waited for
                # Broken before it answered: the waits fall back to GetResult for a while.
                delay = _BACKOFF_SECONDS[min(self._failures, len(_BACKOFF_SECONDS) - 1)]
                self._failures += 1
                self._down_until = time.monotonic() + delay
                logger.info("task watch stream unavailable; GetResult for %.1fs", delay)
                self._end_all(Miss.DOWN)
                self._expected.clear()
        finally:
            self._runner = None

    async def _stream(self) -> bool:
        """One WatchTasks stream, opened with every waited id, until it ends; whether it
        answered anything."""
        requests: Requests = asyncio.Queue()
        _prune(self._expected, time.monotonic() - ENDED_SECONDS)
        self._watched = set(self._waiters) | set(self._expected)
        _put(requests, list(self._watched))
        self._requests, self._new = requests, []
        self.counts.streams += 1
        replied = False
        call = self._open_stream(_drain(requests))
        try:
            async for reply in call:
                replied = True
                self._deliver(reply)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            logger.info("task watch stream ended: %s", code.name if code else "UNKNOWN")
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                replied = True  # its time bound, not a failure: re-open at once
        finally:
            self._requests = None
            self._watched = set()
            requests.put_nowait(None)  # ends the request iterator, so gRPC's reader of it ends
            call.cancel()
            await asyncio.sleep(0)  # lets that reader finish (even while being cancelled)
        return replied

    def _deliver(self, reply: gateway_pb2.WatchTasksResponse) -> None:
        for state in reply.tasks:
            if state.status not in _TERMINAL:
                continue  # a long poll answers only the end (or its state at the bound)
            task_id = state.task_id
            self._watched.discard(task_id)
            expected = self._expected.pop(task_id, None) is not None
            answered = False
            for future in self._waiters.pop(task_id, ()):
                if not future.done():
                    self.counts.answered += 1
                    future.set_result(state)
                    answered = True
            if expected and not answered:
                self._keep(task_id, state)
        for task_id in reply.unknown_task_ids:
            self._watched.discard(task_id)
            self._expected.pop(task_id, None)
            for future in self._waiters.pop(task_id, ()):
                if not future.done():
                    future.set_result(Miss.UNKNOWN)

    def _keep(self, task_id: str, state: common_pb2.TaskState) -> None:
        """Keeps a watched-ahead task's end for its long poll, within the time and byte bounds."""
        now = time.monotonic()
        size = len(state.result) + len(state.error.traceback) + len(state.error.message)
        if size > ENDED_BYTES:
            return
        self._ended[task_id] = (state, now, size)
        self._ended_bytes += size
        limit = now - ENDED_SECONDS
        while self._ended:
            oldest_id, (_, since, oldest_size) = next(iter(self._ended.items()))
            if since > limit and self._ended_bytes <= ENDED_BYTES:
                break
            del self._ended[oldest_id]
            self._ended_bytes -= oldest_size


def _prune(since: OrderedDict[str, float], limit: float) -> None:
    """Drops the entries older than ``limit`` (the oldest come first)."""
    while since:
        task_id, t = next(iter(since.items()))
        if t > limit:
            return
        del since[task_id]


def _put(requests: Requests, task_ids: list[str]) -> None:
    for start in range(0, len(task_ids), _IDS_PER_REQUEST):
        chunk = task_ids[start : start + _IDS_PER_REQUEST]
        requests.put_nowait(gateway_pb2.WatchTasksRequest(task_ids=chunk))


async def _drain(requests: Requests) -> AsyncIterator[gateway_pb2.WatchTasksRequest]:
    """The queued requests, those queued while the last was being written merged into one
    (each write on a stream costs about as much as a small unary call)."""
    while (request := await requests.get()) is not None:  # None: the call has ended
        ended = False
        while not requests.empty() and len(request.task_ids) < _IDS_PER_REQUEST:
            more = requests.get_nowait()
            if more is None:
                ended = True
                break
            request.task_ids.extend(more.task_ids)
        yield request
        if ended:
            return
