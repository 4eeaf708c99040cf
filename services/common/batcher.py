"""Coalesce many concurrent single operations into one batch call, with no added delay.

The first caller starts a flush on the next loop iteration; every call made before the flush
runs joins the same batch. At most one batch is under way at a time: calls made meanwhile wait
for it and then go together as the next one. Under load, batches grow by themselves; when idle,
a lone call is flushed at once. Used to turn many single RPCs into one Redis round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class _Group(Generic[R]):
    """The items of one ``submit_many`` call: one future for all their results."""

    __slots__ = ("future", "left", "results")

    def __init__(self, future: asyncio.Future[list[R]], count: int) -> None:
        self.future = future
        self.results: list[R | None] = [None] * count
        self.left = count


class Batcher(Generic[T, R]):
    """Calls ``handler(items)`` (returning one result per item) for batches of submitted items."""

    def __init__(
        self,
        handler: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 512,
        size: Callable[[T], int] | None = None,
        max_bytes: int = 0,
    ) -> None:
        """``size(item)`` and ``max_bytes`` (when both set) also bound a batch in bytes; an item
        larger than ``max_bytes`` goes in a batch of its own."""
        self._handler = handler
        self._max_batch = max_batch
        self._size = size
        self._max_bytes = max_bytes
        self._pending: list[tuple[T, _Group[R], int]] = []
        self._scheduled = False
        self._running: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """The results of ``items``, which join the pending batches together (one future for
        all of them); an error of any batch they are in is raised."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        group: _Group[R] = _Group(loop.create_future(), len(items))
        self._pending.extend((item, group, i) for i, item in enumerate(items))
        if not self._scheduled and self._running is None:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await group.future

    def _flush(self) -> None:
        self._scheduled = False
        if self._running is not None or not self._pending:
            return
        count = min(len(self._pending), self._max_batch)
        if self._size is not None and self._max_bytes > 0:
            total = 0
            for i in range(count):
                total += self._size(self._pending[i][0])
                if total > self._max_bytes and i > 0:
                    count = i
                    break
        chunk = self._pending[:count]
        del self._pending[:count]
        self._running = asyncio.ensure_future(self._run(chunk))
        self._running.add_done_callback(self._ran)

    def _ran(self, task: asyncio.Task[None]) -> None:
        self._running = None
        self._flush()

    async def _run(self, chunk: list[tuple[T, _Group[R], int]]) -> None:
        try:
            results = await self._handler([item for item, _, _ in chunk])
        except BaseException as exc:  # handed to every caller of the batch
            for _, group, _ in chunk:
                if not group.future.done():
                    group.future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, group, index), result in zip(chunk, results, strict=True):
            group.results[index] = result
            group.left -= 1
            if group.left == 0 and not group.future.done():
                group.future.set_result(group.results)  # type: ignore[arg-type]


class BatchQueue(Generic[T]):
    """Hands added items to ``handler(items)`` in batches, with no future per item.

    Like :class:`Batcher`, at most one batch is under way: items added meanwhile go together as
    the next one, so batches grow with load and a lone item is handled on the next loop turn.
    The handler deals with the outcome of each item itself; an exception it raises is logged.
    """

    def __init__(
        self, handler: Callable[[list[T]], Awaitable[None]], *, max_batch: int = 4096
    ) -> None:
        self._handler = handler
        self._max_batch = max_batch
        self._pending: list[T] = []
        self._scheduled = False
        self._running: asyncio.Future[None] | None = None

    def add(self, items: Iterable[T]) -> None:
        self._pending.extend(items)
        if self._pending and not self._scheduled and self._running is None:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._running is not None or not self._pending:
            return
        chunk = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        self._running = asyncio.ensure_future(self._handler(chunk))
        self._running.add_done_callback(self._ran)

    def _ran(self, task: asyncio.Future[None]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is not None:
            log.error("a batch failed", exc_info=task.exception())
        self._flush()
