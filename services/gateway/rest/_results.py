"""Long polls answered from one WatchTasks stream that the shim keeps to the gateway.

``GET /result/{id}?wait=`` waits here for the task's terminal state instead of holding a GetResult
call of its own: each task id goes on the shared stream once, and the gateway answers with
batches of states. The stream is opened when a wait needs it. One that breaks after it answered
(a gateway restart) is re-opened at once with every id still waited for; one that breaks before
answering hands its waits back (``Miss.DOWN``) so that the caller falls back to the unary
GetResult, and the stream is left down for a backoff, during which waits are not taken here.
Everything runs on the shim's event loop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

import grpc
from faas.v1 import common_pb2, gateway_pb2

from services.gateway.limits import MAX_ID_CHARS

__all__ = ["Miss", "ResultWatch", "WatchCounts"]

logger = logging.getLogger(__name__)

_IDS_PER_REQUEST: Final = 4096
_MAX_WATCHED: Final = 100_000  # ids on one stream; past it, waits use the unary GetResult
_BACKOFF_SECONDS: Final = (0.1, 0.5, 1.0, 2.0, 5.0)
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

    waits: int = 0
    answered: int = 0
    streams: int = 0


class ResultWatch:
    """Waiters keyed by task id, answered from one WatchTasks stream."""

    def __init__(self, open_stream: OpenStream) -> None:
        self._open_stream = open_stream
        self._waiters: dict[str, list[asyncio.Future[common_pb2.TaskState | Miss]]] = {}
        self._watched: set[str] = set()  # ids sent on the current stream, not yet ended
        self._new: list[str] = []  # ids not yet sent on the current stream
        self._flush_scheduled = False
        self._requests: Requests | None = None
        self._runner: asyncio.Task[None] | None = None
        self._failures = 0
        self._down_until = 0.0
        self._stopped = False
        self.counts = WatchCounts()

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
        if not self.takes(task_id):
            return Miss.DOWN
        loop = asyncio.get_running_loop()
        future: asyncio.Future[common_pb2.TaskState | Miss] = loop.create_future()
        self._waiters.setdefault(task_id, []).append(future)
        self.counts.waits += 1
        if self._runner is None:
            self._new.clear()  # a new stream starts with every waited id
            self._runner = loop.create_task(self._run(), name="rest-watch-tasks")
        elif task_id not in self._watched:
            self._watched.add(task_id)
            self._new.append(task_id)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush)
        try:
            async with asyncio.timeout(seconds):
                return await future
        except TimeoutError:
            return Miss.TIMEOUT
        finally:
            self._drop(task_id, future)

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
            while self._waiters and not self._stopped:
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
        finally:
            self._runner = None

    async def _stream(self) -> bool:
        """One WatchTasks stream, opened with every waited id, until it ends; whether it
        answered anything."""
        requests: Requests = asyncio.Queue()
        self._watched = set(self._waiters)
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
            self._watched.discard(state.task_id)
            for future in self._waiters.pop(state.task_id, ()):
                if not future.done():
                    self.counts.answered += 1
                    future.set_result(state)
        for task_id in reply.unknown_task_ids:
            self._watched.discard(task_id)
            for future in self._waiters.pop(task_id, ()):
                if not future.done():
                    future.set_result(Miss.UNKNOWN)


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
