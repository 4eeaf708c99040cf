"""The gateway's end of the Link stream: hands new tasks to the dispatcher, receives events.

A terminal event carries the task's state as stored (the dispatcher writes Redis before it sends
the event), so waiters and watches are answered from it; other events only wake them to read.

Tasks are already stored in Redis when they are sent, so a task sent while the link is down is
not lost: the dispatcher reconciles QUEUED tasks from Redis whenever a gateway (re)connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

import grpc
from faas.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc

from services.common.streams import split

from .waiters import TaskWaiters

log = logging.getLogger(__name__)

_TERMINAL = frozenset({common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED})


class DispatcherLink:
    """Keeps one Link stream open (reconnecting with backoff) and batches outgoing tasks."""

    def __init__(
        self, channel: grpc.aio.Channel, waiters: TaskWaiters, token: str | None = None
    ) -> None:
        self._stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        # The gateway's enrolled token, for a dispatcher that admits enrolled gateways only.
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._waiters = waiters
        self._outbox: asyncio.Queue[dispatcher_pb2.LinkRequest] = asyncio.Queue()
        self._pending: list[dispatcher_pb2.TaskSpec] = []
        self._flush_scheduled = False
        self._connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        """The gateway's token as call metadata, for its other calls to the dispatcher."""
        return self._metadata

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="dispatcher-link")

    async def close(self) -> None:
        self._closing = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    def send(self, spec: dispatcher_pb2.TaskSpec) -> None:
        """Queues a task for the dispatcher; tasks queued in one loop turn go in bounded batches."""
        if not self.connected:
            return  # the dispatcher picks it up from Redis when the link is back
        self._pending.append(spec)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        tasks, self._pending = self._pending, []
        if tasks:
            for batch in split(dispatcher_pb2.TaskSpecBatch(tasks=tasks)):
                self._outbox.put_nowait(dispatcher_pb2.LinkRequest(tasks=batch))

    async def _requests(self) -> AsyncIterator[dispatcher_pb2.LinkRequest]:
        yield dispatcher_pb2.LinkRequest(heartbeat=dispatcher_pb2.Heartbeat())
        while True:
            try:
                yield await asyncio.wait_for(self._outbox.get(), timeout=5.0)
            except TimeoutError:
                yield dispatcher_pb2.LinkRequest(heartbeat=dispatcher_pb2.Heartbeat())

    def _on_events(self, events: Iterable[dispatcher_pb2.TaskEvent]) -> None:
        """Wakes the waiters and watches of each task; a terminal event carries the stored
        state, which answers them with no Redis read."""
        notify = self._waiters.notify
        for event in events:
            terminal = event.status in _TERMINAL
            state = event.state if terminal and event.HasField("state") else None
            notify(event.task_id, terminal=terminal, state=state)

    async def _run(self) -> None:
        backoff = 0.1
        while not self._closing:
            self._outbox = asyncio.Queue()
            call = self._stub.Link(self._requests(), metadata=self._metadata)
            try:
                async for response in call:
                    if not self._connected.is_set():
                        self._connected.set()
                        backoff = 0.1
                        log.info("linked to the dispatcher")
                        self._waiters.notify_all()
                    if response.HasField("events"):
                        self._on_events(response.events.events)
            except grpc.aio.AioRpcError as exc:
                log.warning("dispatcher link: %s %s", exc.code().name, exc.details())
            finally:
                call.cancel()
                self._connected.clear()
                self._pending.clear()
            await asyncio.sleep(backoff)  # reconnect backoff, not a synchronization
            backoff = min(backoff * 2, 2.0)
