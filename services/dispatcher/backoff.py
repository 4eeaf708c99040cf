"""Waiting out Redis outages: the one backoff every store call of the dispatcher goes through."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.common.errors import StoreUnavailable
from services.common.store import StoreFailed

__all__ = ["OUTAGES", "Outages", "next_delay", "through_outages"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_DELAY = 0.1
_MAX_DELAY = 2.0


class Outages:
    """What :func:`through_outages` met in this process (read by the metrics): Redis calls that
    failed, and those tried again."""

    __slots__ = ("errors", "retries")

    def __init__(self) -> None:
        self.errors = 0
        self.retries = 0


OUTAGES = Outages()


def next_delay(delay: float) -> float:
    """The wait after one that was ``delay`` s: doubled, at most two seconds."""
    return min(delay * 2, _MAX_DELAY)


async def through_outages(call: Callable[[], Awaitable[T]]) -> T:
    """Calls ``call`` until Redis answers; an error reply (StoreFailed) is the caller's."""
    delay = _FIRST_DELAY
    while True:
        try:
            return await call()
        except StoreFailed:
            OUTAGES.errors += 1
            raise  # Redis answered with an error: the caller decides
        except StoreUnavailable as exc:
            OUTAGES.errors += 1
            OUTAGES.retries += 1
            log.warning("redis unavailable (%s); retrying in %.1fs", exc.__cause__, delay)
            await asyncio.sleep(delay)  # backoff while Redis is away
            delay = next_delay(delay)
