"""Execute coalescing: the ``POST /execute_function`` requests made at about the same time go to
the gateway as one ExecuteBatch, as the SDK's ``submit()`` calls do (``faas._submitter``).

A request that arrives while no call is in flight goes at once (a lone request pays no delay);
the requests that arrive while calls are in flight wait up to ``LINGER_SECONDS`` (or until
``MAX_ITEMS`` are waiting) and then go together. At most ``MAX_IN_FLIGHT`` calls are out at once;
what arrives meanwhile joins the next one, so batches grow with load. Requests go together only
when they share their function, time limit and placement (one ExecuteBatch carries one of each),
and only requests of one API key meet in one coalescer (see ``_callers``).

A batch carries a fresh ``request_id`` (the gateway keys each task by ``request_id#index``). A
batch refused as a whole by one bad item (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...) is sent
again one task per ExecuteFunction under those keys, so each request gets the very answer it
would have had alone; only errors that are the same for every item (the gateway or its store
unavailable, a deadline, an unknown function) are answered to every request of the batch.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import grpc
from faas.v1 import common_pb2, gateway_pb2
from google.protobuf import duration_pb2

__all__ = [
    "LINGER_SECONDS",
    "MAX_BYTES",
    "MAX_IN_FLIGHT",
    "MAX_ITEMS",
    "ExecuteCoalescer",
    "ExecuteSender",
]

LINGER_SECONDS: Final = 0.001
"""How long a request that arrives while calls are in flight waits for others to join it."""

MAX_ITEMS: Final = 256
"""The most tasks one ExecuteBatch carries (well under the gateway's default limit)."""

MAX_BYTES: Final = 4 * 1024 * 1024
"""The most payload bytes one ExecuteBatch carries (a bigger payload goes alone)."""

MAX_IN_FLIGHT: Final = 4
"""The most execute calls the shim has out at once."""

# Errors that say nothing about any one item: every request of the batch gets them as they are
# (the gateway words them the same for ExecuteFunction and ExecuteBatch).
_WHOLE_BATCH_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNAUTHENTICATED,  # the key, which every item of the batch shares
    }
)

_Key = tuple[str, int | None, bytes]  # function id, time limit (ns), placement (serialized)


class ExecuteSender(Protocol):
    """The two gateway calls the coalescer makes (``GatewayClient`` implements them)."""

    async def execute_function_call(
        self, request: gateway_pb2.ExecuteFunctionRequest
    ) -> gateway_pb2.ExecuteFunctionResponse: ...

    async def execute_batch_call(
        self, request: gateway_pb2.ExecuteBatchRequest
    ) -> gateway_pb2.ExecuteBatchResponse: ...


@dataclass(slots=True)
class _Batch:
    """Requests that go in one call: same function, time limit and placement."""

    function_id: str
    timeout: duration_pb2.Duration | None
    placement: common_pb2.Placement | None
    futures: list[asyncio.Future[str]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class CoalescerCounts:
    """What the coalescer sent: requests taken, and the gateway calls they went in."""

    requests: int = 0
    batch_calls: int = 0
    function_calls: int = 0


class ExecuteCoalescer:
    """Takes execute requests on the loop and sends them, coalesced, through ``sender``.

    ``execute`` returns the task id, or raises the ``AioRpcError`` that this request alone would
    have met; ``on_queued`` is given the ids of each call's stored tasks. ``close`` cancels what
    is still waiting or in flight.
    """

    def __init__(
        self,
        sender: ExecuteSender,
        *,
        on_queued: Callable[[list[str]], None] | None = None,
        linger: float = LINGER_SECONDS,
        max_items: int = MAX_ITEMS,
        max_bytes: int = MAX_BYTES,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._sender = sender
        self._on_queued = on_queued
        self._linger = linger
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._max_in_flight = max_in_flight
        self._open: dict[_Key, _Batch] = {}  # batches still taking requests, by key
        self._ready: deque[_Batch] = deque()  # batches to send as soon as a slot is free
        self._sending: set[asyncio.Task[None]] = set()
        self.counts = CoalescerCounts()

    @property
    def idle(self) -> bool:
        """Whether no request is waiting or in flight."""
        return not self._open and not self._ready and not self._sending

    async def execute(
        self,
        function_id: str,
        payload: bytes,
        timeout: duration_pb2.Duration | None,
        placement: common_pb2.Placement | None,
    ) -> str:
        """Queues one task; its id once the gateway stored it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        self.counts.requests += 1
        key: _Key = (
            function_id,
            timeout.ToNanoseconds() if timeout is not None else None,
            placement.SerializeToString(deterministic=True) if placement is not None else b"",
        )
        if len(payload) >= self._max_bytes:
            alone = _Batch(function_id, timeout, placement, [future], [payload], len(payload))
            self._ready.append(alone)  # alone, so its size holds no one else back
        else:
            self._join(loop, key, _Batch(function_id, timeout, placement), future, payload)
        self._pump()
        return await future

    def _join(
        self,
        loop: asyncio.AbstractEventLoop,
        key: _Key,
        template: _Batch,
        future: asyncio.Future[str],
        payload: bytes,
    ) -> None:
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = template
        batch.futures.append(future)
        batch.payloads.append(payload)
        batch.size += len(payload)
        if len(batch.payloads) >= self._max_items or batch.size >= self._max_bytes:
            self._seal(key, batch, pump=False)
        elif not self._sending:
            self._seal(key, batch, pump=False)  # nothing in flight: no reason to wait
        elif batch.timer is None:
            batch.timer = loop.call_later(self._linger, self._seal, key, batch)

    def _seal(self, key: _Key, batch: _Batch, pump: bool = True) -> None:
        """``batch`` takes no more requests and goes as soon as a call slot is free."""
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if self._open.get(key) is batch:
            del self._open[key]
            self._ready.append(batch)
            if pump:
                self._pump()

    def _pump(self) -> None:
        while self._ready and len(self._sending) < self._max_in_flight:
            batch = _unsent(self._ready.popleft())
            if batch is None:
                continue  # every request of it was cancelled before it went
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._pump()

    async def _send(self, batch: _Batch) -> None:
        try:
            if len(batch.payloads) == 1:
                # A lone request goes as it did before coalescing: one ExecuteFunction.
                results: list[str | BaseException] = [await self._one(batch, 0, "")]
            else:
                results = await self._many(batch)
        except asyncio.CancelledError:
            for future in batch.futures:
                future.cancel()
            raise
        except Exception as exc:
            results = [exc] * len(batch.futures)
        if self._on_queued is not None:
            self._on_queued([r for r in results if isinstance(r, str)])
        for future, result in zip(batch.futures, results, strict=True):
            if future.done():
                continue  # its HTTP request went away
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _many(self, batch: _Batch) -> list[str | BaseException]:
        request_id = uuid.uuid4().hex
        request = gateway_pb2.ExecuteBatchRequest(
            function_id=batch.function_id,
            payloads=batch.payloads,
            timeout=batch.timeout,
            request_id=request_id,
            placement=batch.placement,
        )
        self.counts.batch_calls += 1
        try:
            reply = await self._sender.execute_batch_call(request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _WHOLE_BATCH_CODES:
                return [exc] * len(batch.payloads)
            # One bad item refuses the batch: each request alone, under its key in the batch.
            alone = [
                self._one(batch, index, f"{request_id}#{index}")
                for index in range(len(batch.payloads))
            ]
            return list(await asyncio.gather(*alone, return_exceptions=True))
        if len(reply.task_ids) != len(batch.payloads):
            raise RuntimeError(
                f"ExecuteBatch answered {len(reply.task_ids)} ids for {len(batch.payloads)} tasks"
            )
        return list(reply.task_ids)

    async def _one(self, batch: _Batch, index: int, request_id: str) -> str:
        request = gateway_pb2.ExecuteFunctionRequest(
            function_id=batch.function_id,
            payload=batch.payloads[index],
            timeout=batch.timeout,
            request_id=request_id,
            placement=batch.placement,
        )
        self.counts.function_calls += 1
        reply = await self._sender.execute_function_call(request)
        return str(reply.task_id)

    async def close(self) -> None:
        """Cancels every request still waiting or in flight."""
        for batch in (*self._open.values(), *self._ready):
            if batch.timer is not None:
                batch.timer.cancel()
            for future in batch.futures:
                future.cancel()
        self._open.clear()
        self._ready.clear()
        sending = list(self._sending)
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)


def _unsent(batch: _Batch) -> _Batch | None:
    """``batch`` without the requests cancelled before it went (None if that is all of them)."""
    if not any(future.done() for future in batch.futures):
        return batch
    kept = [(f, p) for f, p in zip(batch.futures, batch.payloads, strict=True) if not f.done()]
    if not kept:
        return None
    batch.futures = [f for f, _ in kept]
    batch.payloads = [p for _, p in kept]
    return batch
