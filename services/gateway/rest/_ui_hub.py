"""The dashboard's producers: one per API key, making a snapshot each second for every page.

However many pages of one key are open, one producer per key makes the gateway calls (at most
``CALLS_PER_SNAPSHOT`` a snapshot, a snapshot per ``INTERVAL``) and every page of that key reads
its latest snapshot; a slow page skips snapshots rather than queueing them. A producer whose
pages have all gone stops after ``LINGER`` seconds. A call the gateway does not implement
(UNIMPLEMENTED: an older gateway) is asked again only every ``RETRY_UNIMPLEMENTED`` seconds; its
part of the page says so. A key the gateway refuses (UNAUTHENTICATED) ends the producer at
once, with the refusal as its last word. Producers and pages are bounded (``MAX_PRODUCERS``,
``MAX_PAGES``): past them a new page is refused (``DashboardBusy``), so made-up keys cannot make
the shim call the gateway without bound. The table is indexed by a SHA-256 of the key; no key is
logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

import grpc
from faas.v1 import common_pb2, gateway_pb2

from services.gateway.rest._errors import grpc_error_detail, json_safe
from services.gateway.rest._ui_snapshot import Parts, Throughput, build_snapshot

__all__ = [
    "CALLS_PER_SNAPSHOT",
    "INTERVAL",
    "DashboardBusy",
    "Hub",
    "Page",
    "Refusal",
    "SnapshotSource",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

INTERVAL: Final = 1.0
"""Seconds between two snapshots of one producer."""
CALLS_PER_SNAPSHOT: Final = 4
"""ListWorkers, ListTasks (recent), ListTasks (QUEUED, for the oldest), ListFunctions."""
LINGER: Final = 5.0
"""A producer without pages stops after this many seconds."""
RETRY_UNIMPLEMENTED: Final = 10.0
MAX_PRODUCERS: Final = 32
MAX_PAGES: Final = 256
STALE_PAGE: Final = 30.0
"""A page that has not read for this long is counted gone (a stream that never started)."""
RECENT_TASKS: Final = 50
QUEUED_PAGE: Final = 200
FUNCTIONS_PAGE: Final = 100


class SnapshotSource(Protocol):
    """The gateway calls a snapshot is made of (``GatewayClient`` has them)."""

    async def list_workers(self, *, key: str | None = None) -> gateway_pb2.ListWorkersResponse:
        """ListWorkers."""

    async def list_tasks_call(
        self, request: gateway_pb2.ListTasksRequest, *, key: str | None = None
    ) -> gateway_pb2.ListTasksResponse:
        """ListTasks."""

    async def list_functions_call(
        self, request: gateway_pb2.ListFunctionsRequest, *, key: str | None = None
    ) -> gateway_pb2.ListFunctionsResponse:
        """ListFunctions."""


class DashboardBusy(Exception):
    """Too many dashboard pages or keys at once."""


@dataclass(frozen=True)
class Refusal:
    """Why a producer stopped: the gateway refused its key (HTTP status and detail)."""

    status: int
    detail: str


class _Unauthenticated(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Producer:
    """One key's snapshots: a task calling the gateway every ``interval`` while pages read."""

    def __init__(self, hub: Hub, index: bytes, key: str | None) -> None:
        self._hub = hub
        self._index = index
        self._key = key
        self._pages: set[Page] = set()
        self._idle_since = time.monotonic()
        self._retry_at: dict[str, float] = {}
        self._throughput = Throughput()
        self.latest: bytes | None = None
        self.version = 0
        self.refusal: Refusal | None = None
        self.done = False
        self._fresh = asyncio.Event()
        self.snapshots = 0
        self.calls = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def pages(self) -> int:
        return len(self._pages)

    def add(self, page: Page) -> None:
        self._pages.add(page)

    def remove(self, page: Page) -> None:
        self._pages.discard(page)
        if not self._pages:
            self._idle_since = time.monotonic()

    async def fresh(self, seen: int, timeout: float) -> bool:
        """Waits until a snapshot newer than ``seen`` is out (True) or ``timeout`` passed."""
        if self.version > seen or self.done:
            return True
        try:
            await asyncio.wait_for(self._fresh.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _publish(self, data: bytes | None) -> None:
        if data is not None:
            self.latest = data
            self.version += 1
        fresh, self._fresh = self._fresh, asyncio.Event()
        fresh.set()

    async def _run(self) -> None:
        try:
            while True:
                started = time.monotonic()
                try:
                    snapshot = await self._snapshot()
                except _Unauthenticated as exc:
                    self.refusal = Refusal(401, exc.detail)
                    return
                self._publish(json.dumps(json_safe(snapshot), separators=(",", ":")).encode())
                self._prune(started)
                if not self._pages and started - self._idle_since > self._hub.linger:
                    return
                await asyncio.sleep(max(0.0, self._hub.interval - (time.monotonic() - started)))
        except Exception:
            logger.exception("dashboard snapshots stopped")
            self.refusal = Refusal(503, "the dashboard could not build a snapshot")
        finally:
            self.done = True
            self._hub.forget(self._index, self)
            self._publish(None)

    def _prune(self, now: float) -> None:
        for page in [p for p in self._pages if now - p.touched > STALE_PAGE]:
            self.remove(page)

    async def _snapshot(self) -> dict[str, object]:
        source, key = self._hub.source, self._key
        parts = Parts()
        workers, tasks, queued, functions = await asyncio.gather(
            self._call(parts, "workers", "ListWorkers", lambda: source.list_workers(key=key)),
            self._call(
                parts,
                "tasks",
                "ListTasks",
                lambda: source.list_tasks_call(
                    gateway_pb2.ListTasksRequest(page_size=RECENT_TASKS), key=key
                ),
            ),
            self._call(
                parts,
                "queued",
                "ListTasks",
                lambda: source.list_tasks_call(
                    gateway_pb2.ListTasksRequest(
                        page_size=QUEUED_PAGE, statuses=[common_pb2.TASK_STATUS_QUEUED]
                    ),
                    key=key,
                ),
            ),
            self._call(
                parts,
                "functions",
                "ListFunctions",
                lambda: source.list_functions_call(
                    gateway_pb2.ListFunctionsRequest(page_size=FUNCTIONS_PAGE), key=key
                ),
            ),
        )
        parts.workers, parts.tasks, parts.queued, parts.functions = (
            workers,
            tasks,
            queued,
            functions,
        )
        self.snapshots += 1
        return build_snapshot(parts, time.time(), self._throughput)

    async def _call(
        self, parts: Parts, part: str, method: str, call: Callable[[], Awaitable[T]]
    ) -> T | None:
        if time.monotonic() < self._retry_at.get(part, 0.0):
            parts.missing[part] = f"this gateway has no {method} (UNIMPLEMENTED)"
            return None
        self.calls += 1
        try:
            result: T = await call()
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise _Unauthenticated(grpc_error_detail(error)) from None
            if code == grpc.StatusCode.UNIMPLEMENTED:
                self._retry_at[part] = time.monotonic() + RETRY_UNIMPLEMENTED
                parts.missing[part] = f"this gateway has no {method} (UNIMPLEMENTED)"
            else:
                name = code.name if code is not None else "UNKNOWN"
                parts.missing[part] = f"{method}: {name}: {grpc_error_detail(error)}"
            return None
        return result

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Page:
    """One open page's subscription to its key's producer."""

    def __init__(self, hub: Hub, producer: _Producer) -> None:
        self._hub = hub
        self._producer = producer
        self.touched = time.monotonic()
        self._closed = False

    async def first(self, timeout: float) -> Refusal | None:
        """Waits for the producer's first snapshot: None once there is one, else why not."""
        deadline = time.monotonic() + timeout
        producer = self._producer
        while producer.latest is None and not producer.done:
            left = deadline - time.monotonic()
            if left <= 0:
                return Refusal(504, "the gateway did not answer in time")
            await producer.fresh(0, left)
        self.touched = time.monotonic()
        if producer.latest is None:
            return producer.refusal or Refusal(503, "the dashboard stopped")
        return None

    async def events(self, stopping: asyncio.Event, seconds: float) -> AsyncIterator[bytes]:
        """Server-sent events: every new snapshot (``event: snapshot``), a comment when none
        came for a while, and ``event: refused`` if the key stops being accepted. Ends after
        ``seconds`` (the page reconnects) or when ``stopping`` is set (the shim stops)."""
        producer = self._producer
        deadline = time.monotonic() + seconds
        seen = 0
        try:
            yield b"retry: 2000\n\n"
            while not stopping.is_set() and time.monotonic() < deadline:
                self.touched = time.monotonic()
                if producer.version > seen and producer.latest is not None:
                    seen = producer.version
                    yield b"event: snapshot\ndata: " + producer.latest + b"\n\n"
                    continue
                if producer.done:
                    refusal = producer.refusal or Refusal(503, "the dashboard stopped")
                    body = json.dumps({"status": refusal.status, "detail": refusal.detail})
                    yield b"event: refused\ndata: " + body.encode() + b"\n\n"
                    return
                if not await _either(producer.fresh(seen, 15.0), stopping):
                    yield b": still here\n\n"
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._producer.remove(self)
            self._hub.pages -= 1


async def _either(fresh: Coroutine[Any, Any, bool], stopping: asyncio.Event) -> bool:
    """Runs ``fresh`` until it ends or ``stopping`` is set: its answer, or False."""
    wait = asyncio.ensure_future(fresh)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        done, _ = await asyncio.wait({wait, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (wait, stop):
            task.cancel()
    return wait in done and bool(wait.result())


class Hub:
    """The producers by key; make it in the running event loop, ``close()`` it at shutdown."""

    def __init__(
        self,
        source: SnapshotSource,
        *,
        interval: float = INTERVAL,
        linger: float = LINGER,
        max_producers: int = MAX_PRODUCERS,
        max_pages: int = MAX_PAGES,
    ) -> None:
        self.source = source
        self.interval = interval
        self.linger = linger
        self._max_producers = max_producers
        self._max_pages = max_pages
        self._producers: dict[bytes, _Producer] = {}
        self.pages = 0

    def __len__(self) -> int:
        return len(self._producers)

    def open(self, key: str | None) -> Page:
        """A page of ``key``'s snapshots, starting its producer if none runs."""
        if self.pages >= self._max_pages:
            raise DashboardBusy(f"over {self._max_pages} dashboard pages are open")
        index = b"" if key is None else hashlib.sha256(key.encode()).digest()
        producer = self._producers.get(index)
        if producer is None or producer.done:
            if len(self._producers) >= self._max_producers:
                raise DashboardBusy(f"over {self._max_producers} API keys have dashboards open")
            producer = self._producers[index] = _Producer(self, index, key)
        page = Page(self, producer)
        producer.add(page)
        self.pages += 1
        return page

    def forget(self, index: bytes, producer: _Producer) -> None:
        if self._producers.get(index) is producer:
            del self._producers[index]

    async def close(self) -> None:
        """Stops every producer."""
        producers = list(self._producers.values())
        self._producers.clear()
        await asyncio.gather(*(p.close() for p in producers))
