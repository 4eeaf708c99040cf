"""One WatchTasks stream that completes all of a client's futures.

The stream is opened when the first future needs it. Each task id goes to the gateway once, in
requests gathered per loop turn; the gateway answers with batches of states. A stream that
breaks (a gateway restart) is re-opened after a backoff, up to ``policy.retries`` times in a
row, with every id still pending; one that reaches ``stream_timeout`` is re-opened at once if
anything is still pending, and otherwise left closed until a future needs it again. A stream
whose status grpc lost (the gateway ended it, say for a bad key, while a request was being
written) is followed by a unary call, whose error (UNAUTHENTICATED, say) is the one the futures
fail with; if that call is answered, the stream is re-opened at once, at most
``_LOST_STATUS_REOPENS`` times in a row. Everything here runs on the client's loop
thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

import grpc

from faas.v1 import common_pb2, gateway_pb2

from . import _serde
from ._futures import TaskFuture
from ._models import TaskInfo
from ._transport import RECONNECT_CODES, Transport, status_lost
from .errors import ClientClosed, ServiceUnavailable, TaskNotFound, from_rpc_error

__all__ = ["TaskWatcher"]

log = logging.getLogger(__name__)

_IDS_PER_REQUEST = 4096
# Re-opens in a row of a stream whose status grpc lost while the gateway takes unary calls.
_LOST_STATUS_REOPENS = 3
_TERMINAL = (common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED)


class TaskWatcher:
    """Futures keyed by task id, resolved from the client's one WatchTasks stream."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._futures: dict[str, list[TaskFuture]] = {}
        self._new: list[str] = []  # ids not yet sent on the open stream
        self._flush_scheduled = False
        self._requests: asyncio.Queue[gateway_pb2.WatchTasksRequest | None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._replied = False  # whether the current stream has answered
        self._closed = False

    def add(self, futures: Iterable[TaskFuture]) -> None:
        """Watches the task of each future (whose id is known) until it ends."""
        for future in futures:
            if future.done():
                continue
            if self._closed:
                future._resolve(error=ClientClosed("the client is closed"))
                continue
            task_id = future._task_id
            assert task_id is not None, "only a submitted task is watched"
            watching = self._futures.get(task_id)
            if watching is not None:
                watching.append(future)
                continue
            self._futures[task_id] = [future]
            self._new.append(task_id)
        if not self._futures:
            return
        if self._runner is None:
            self._new.clear()  # a new stream starts with every watched id
            self._runner = self._loop.create_task(self._run(), name="faas-watch-tasks")
        elif self._new and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def discard(self, future: TaskFuture) -> None:
        """Stops resolving ``future`` (it was cancelled); its task's states are then ignored."""
        task_id = future._task_id
        watching = self._futures.get(task_id) if task_id is not None else None
        if watching is None or future not in watching:
            return
        watching.remove(future)
        if not watching:
            del self._futures[task_id]  # type: ignore[arg-type]

    async def close(self) -> None:
        """Fails every future still watched with ClientClosed and ends the stream."""
        self._closed = True
        futures, self._futures = self._futures, {}
        for watching in futures.values():
            for future in watching:
                future._resolve(
                    error=ClientClosed(f"the client closed before {future.task_id} ended")
                )
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)

    # --- the stream --------------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        ids, self._new = self._new, []
        if self._requests is not None:  # else the next stream opens with every watched id
            _put(self._requests, ids)

    async def _run(self) -> None:
        try:
            await self._transport.first_connection()
            failures = lost = 0
            retries = self._transport.policy.retries
            while self._futures:
                self._replied = False
                try:
                    await self._stream()
                except grpc.aio.AioRpcError as exc:
                    failures = 0 if self._replied else failures
                    lost = 0 if self._replied else lost
                    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                        continue  # stream_timeout: re-open at once (if anything is pending)
                    if status_lost(exc):
                        answer = await self._ask_gateway()
                        if answer is not None:
                            exc = answer  # what the gateway says to any call of ours
                        elif lost < _LOST_STATUS_REOPENS:
                            lost += 1
                            continue  # it takes our calls: re-open at once
                    if exc.code() not in RECONNECT_CODES or failures >= retries:
                        target = self._transport.target
                        self._fail_all(from_rpc_error(exc, attempts=failures + 1, target=target))
                        break
                else:  # the gateway ended the stream while tasks were pending (going away)
                    failures = 0 if self._replied else failures
                    if failures >= retries:
                        error = ServiceUnavailable("the task watch kept ending", code="UNAVAILABLE")
                        self._fail_all(error)
                        break
                delay = self._transport.policy.delay(failures)
                log.debug("task watch broken; re-opening in %.2fs", delay)
                await asyncio.sleep(delay)
                failures += 1
        except Exception as exc:  # the first connection failed
            self._fail_all(exc)
        finally:
            self._runner = None
            self._requests = None

    async def _ask_gateway(self) -> grpc.aio.AioRpcError | None:
        """The error a unary call gets now (None if it is answered), after a stream whose
        status grpc lost: a unary call sends its request with its end, so it cannot lose it."""
        task_id = next(iter(self._futures), "")
        try:
            await self._transport.stub.GetStatus(
                gateway_pb2.GetStatusRequest(task_id=task_id),
                timeout=self._transport.call_timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                return exc
        return None

    async def _stream(self) -> None:
        """One WatchTasks stream, opened with every pending id, until it ends."""
        requests: asyncio.Queue[gateway_pb2.WatchTasksRequest | None] = asyncio.Queue()
        _put(requests, list(self._futures))
        self._requests, self._new = requests, []
        call = self._transport.stub.WatchTasks(
            _drain(requests), timeout=self._transport.stream_timeout
        )
        try:
            async for reply in call:
                self._replied = True
                self._deliver(reply)
        finally:
            self._requests = None
            requests.put_nowait(None)  # ends the request iterator, so gRPC's reader of it ends
            call.cancel()
            await asyncio.sleep(0)  # lets that reader finish (even while being cancelled)

    def _deliver(self, reply: gateway_pb2.WatchTasksResponse) -> None:
        for state in reply.tasks:
            watching = self._futures.get(state.task_id)
            if not watching:
                continue
            if state.status not in _TERMINAL:
                for future in watching:
                    future._update(state)  # its TaskInfo is made if someone reads it
                continue
            info = TaskInfo.from_proto(state)
            del self._futures[state.task_id]
            error: BaseException | None = None
            value = None
            try:
                value = _serde.outcome(info)
            except BaseException as exc:  # the task's own exception, whatever its type
                error = exc
            for future in watching:
                future._update(info)  # not the state: it would keep the whole reply alive
                future._resolve(value, error)
        for task_id in reply.unknown_task_ids:
            for future in self._futures.pop(task_id, ()):
                future._resolve(
                    error=TaskNotFound(
                        f"task {task_id!r} not found", code="NOT_FOUND", reason="TASK_NOT_FOUND"
                    )
                )

    def _fail_all(self, error: BaseException) -> None:
        futures, self._futures = self._futures, {}
        for watching in futures.values():
            for future in watching:
                future._resolve(error=error)


def _put(
    requests: asyncio.Queue[gateway_pb2.WatchTasksRequest | None], task_ids: list[str]
) -> None:
    for start in range(0, len(task_ids), _IDS_PER_REQUEST):
        chunk = task_ids[start : start + _IDS_PER_REQUEST]
        requests.put_nowait(gateway_pb2.WatchTasksRequest(task_ids=chunk))


async def _drain(
    requests: asyncio.Queue[gateway_pb2.WatchTasksRequest | None],
) -> AsyncIterator[gateway_pb2.WatchTasksRequest]:
    while (request := await requests.get()) is not None:  # None: the call has ended
        yield request
