"""Submit coalescing: the ``submit()`` calls made at about the same time go as one ExecuteBatch.

Like a gRPC or Kafka producer, the client lingers briefly before it sends: a task submitted while
nothing is in flight goes at once (a lone submit pays no delay), and the tasks submitted while
requests are in flight wait up to ``LINGER_SECONDS`` (or until ``MAX_ITEMS`` are waiting) and
then go together. At most ``MAX_IN_FLIGHT`` requests are out at once; what arrives meanwhile
joins the next one, so batches grow with load. Tasks go together only when they share their
function, time limit and placement (one ExecuteBatch carries one of each).

Each request carries a fresh ``request_id`` (the gateway keys each task of a batch by
``request_id#index``), so the retries after UNAVAILABLE never queue a task twice. A batch that
the gateway refuses as a whole for one bad item (INVALID_ARGUMENT, RESOURCE_EXHAUSTED) is sent
again one task per ExecuteFunction under the same per-task keys, so only the bad ones fail.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from google.protobuf import duration_pb2

from faas.v1 import common_pb2, gateway_pb2

from ._futures import TaskFuture
from ._transport import Transport
from .errors import ClientClosed, InvalidArgument, PayloadTooLarge

__all__ = ["LINGER_SECONDS", "MAX_IN_FLIGHT", "MAX_ITEMS", "Submitter"]

LINGER_SECONDS = 0.001
"""How long a task submitted while requests are in flight waits for others to join it."""

MAX_ITEMS = 1000
"""The most tasks one ExecuteBatch carries."""

MAX_BYTES = 4 * 1024 * 1024
"""The most payload bytes one ExecuteBatch carries (a bigger payload goes alone)."""

MAX_IN_FLIGHT = 4
"""The most submit requests a client has out at once."""

_Key = tuple[str, int | None, bytes]  # function id, time limit (ns), placement (serialized)


@dataclass(slots=True)
class _Batch:
    """Tasks that go in one request: same function, time limit and placement."""

    function_id: str
    timeout: duration_pb2.Duration | None
    placement: common_pb2.Placement | None
    futures: list[TaskFuture] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None

    def full(self) -> bool:
        return len(self.payloads) >= MAX_ITEMS or self.size >= MAX_BYTES


class Submitter:
    """Queues tasks from any thread and sends them, coalesced, from the client's loop.

    ``put`` returns at once; each future learns its task id when its request is answered
    (``TaskFuture._bind``), and is then handed to ``on_queued``, or fails with the request's
    error. Created on the loop; ``close`` (on the loop) fails whatever was not answered.
    """

    def __init__(
        self, transport: Transport, on_queued: Callable[[Sequence[TaskFuture]], None]
    ) -> None:
        self._transport = transport
        self._on_queued = on_queued
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._incoming: list[tuple[_Key, _Batch, TaskFuture, bytes]] = []
        self._wake_scheduled = False
        self._closed = False
        self._open: dict[_Key, _Batch] = {}  # batches still taking tasks, by key
        self._ready: deque[_Batch] = deque()  # batches to send as soon as a slot is free
        self._sending: set[asyncio.Task[None]] = set()

    # --- any thread --------------------------------------------------------------------------

    def put(
        self,
        future: TaskFuture,
        function_id: str,
        payload: bytes,
        *,
        timeout: duration_pb2.Duration | None = None,
        placement: common_pb2.Placement | None = None,
    ) -> None:
        """Queues one task for ``future``; ClientClosed once the client is closed."""
        key: _Key = (
            function_id,
            timeout.ToNanoseconds() if timeout is not None else None,
            placement.SerializeToString(deterministic=True) if placement is not None else b"",
        )
        template = _Batch(function_id, timeout, placement)
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            self._incoming.append((key, template, future, payload))
            if not self._wake_scheduled:
                self._wake_scheduled = True
                self._loop.call_soon_threadsafe(self._take)

    # --- the loop ----------------------------------------------------------------------------

    def _take(self) -> None:
        with self._lock:
            incoming, self._incoming = self._incoming, []
            self._wake_scheduled = False
        idle = not self._sending
        touched: dict[_Key, _Batch] = {}
        for key, template, future, payload in incoming:
            if future.cancelled():  # cancelled before it was sent: never sent
                future._submission_failed(asyncio.CancelledError())
                continue
            if len(payload) >= MAX_BYTES:
                template.futures.append(future)
                template.payloads.append(payload)
                self._ready.append(template)  # alone, so its size holds no one else back
                continue
            batch = self._open.get(key)
            if batch is None:
                batch = self._open[key] = template
            batch.futures.append(future)
            batch.payloads.append(payload)
            batch.size += len(payload)
            if batch.full():
                self._seal(key, batch, pump=False)
            else:
                touched[key] = batch
        for key, batch in touched.items():
            if self._open.get(key) is not batch:
                continue
            if idle:
                self._seal(key, batch, pump=False)  # nothing in flight: no reason to wait
            elif batch.timer is None:
                batch.timer = self._loop.call_later(LINGER_SECONDS, self._seal, key, batch)
        self._pump()

    def _seal(self, key: _Key, batch: _Batch, pump: bool = True) -> None:
        """``batch`` takes no more tasks and goes as soon as a request slot is free."""
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if self._open.get(key) is batch:
            del self._open[key]
            self._ready.append(batch)
            if pump:
                self._pump()

    def _pump(self) -> None:
        while self._ready and len(self._sending) < MAX_IN_FLIGHT:
            task = self._loop.create_task(self._send(self._ready.popleft()))
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._pump()

    async def _send(self, batch: _Batch) -> None:
        request_id = str(uuid.uuid4())
        try:
            if len(batch.payloads) == 1:
                results: list[str | BaseException] = [await self._one(batch, 0, request_id)]
            else:
                results = await self._many(batch, request_id)
        except asyncio.CancelledError:
            for future in batch.futures:
                future._submission_failed(ClientClosed("the client closed before the submit"))
            raise
        except Exception as exc:
            results = [exc] * len(batch.futures)
        queued: list[TaskFuture] = []
        for future, result in zip(batch.futures, results, strict=True):
            if isinstance(result, BaseException):
                future._submission_failed(result)
            else:
                future._bind(result)
                queued.append(future)
        if queued:
            self._on_queued(queued)

    async def _many(self, batch: _Batch, request_id: str) -> list[str | BaseException]:
        request = gateway_pb2.ExecuteBatchRequest(
            function_id=batch.function_id,
            payloads=batch.payloads,
            timeout=batch.timeout,
            request_id=request_id,
            placement=batch.placement,
        )
        try:
            reply = await self._transport.unary(self._transport.stub.ExecuteBatch, request)
        except (InvalidArgument, PayloadTooLarge):
            # One bad item refuses the batch: each task alone, under its key in the batch.
            key = f"{request_id}#{{}}"
            alone = [self._one(batch, i, key.format(i)) for i in range(len(batch.payloads))]
            return list(await asyncio.gather(*alone, return_exceptions=True))
        return list(reply.task_ids)

    async def _one(self, batch: _Batch, index: int, request_id: str) -> str:
        request = gateway_pb2.ExecuteFunctionRequest(
            function_id=batch.function_id,
            payload=batch.payloads[index],
            timeout=batch.timeout,
            request_id=request_id,
            placement=batch.placement,
        )
        reply = await self._transport.unary(self._transport.stub.ExecuteFunction, request)
        return str(reply.task_id)

    async def close(self) -> None:
        """Fails every task not yet answered with ClientClosed (on the loop)."""
        with self._lock:
            self._closed = True
            incoming, self._incoming = self._incoming, []
        waiting = [f for batch in (*self._open.values(), *self._ready) for f in batch.futures]
        for batch in self._open.values():
            if batch.timer is not None:
                batch.timer.cancel()
        self._open.clear()
        self._ready.clear()
        for future in [*waiting, *(f for _, _, f, _ in incoming)]:
            future._submission_failed(ClientClosed("the client closed before the submit"))
        sending = list(self._sending)
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)
