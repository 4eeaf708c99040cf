"""Bounded concurrency for load loops: a fixed number of coroutines drain one iterator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def drain(items: Iterable[T], handle: Callable[[T], Awaitable[None]], window: int) -> None:
    """Calls ``handle`` on every item with at most ``window`` calls in flight."""
    iterator = iter(items)

    async def lane() -> None:
        for item in iterator:  # the lanes share one iterator: each item is taken once
            await handle(item)

    await asyncio.gather(*(lane() for _ in range(max(1, window))))
