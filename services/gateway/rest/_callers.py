"""One execute coalescer and one shared WatchTasks stream per API key, so that the requests of
callers with different keys (different tenants) never share a gateway call.

A REST request's key goes to the gateway as the ``authorization`` metadata of the call that
carries it; an ExecuteBatch or a WatchTasks stream carries one key, so the coalescing and the
shared stream are kept per key (``Caller``). The table is bounded: a caller unused for
``IDLE_SECONDS`` is dropped, and past ``MAX_CALLERS`` the least recently used callers with
nothing waiting are dropped first (a flood of made-up keys cannot grow it without bound).
Dropping one closes its stream; its counts are kept for the shim's shutdown log.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Final

from services.gateway.rest._coalesce import CoalescerCounts, ExecuteCoalescer
from services.gateway.rest._results import ResultWatch, WatchCounts

__all__ = ["IDLE_SECONDS", "MAX_CALLERS", "RECHECK_SECONDS", "Caller", "Callers", "metadata_for"]

MAX_CALLERS: Final = 256
"""The most callers (keys) kept at once, unless more than that are busy."""

IDLE_SECONDS: Final = 120.0
"""A caller unused this long is dropped (its stream closed)."""

RECHECK_SECONDS: Final = 1.0
"""A long poll is answered from a key's stream only if a call showed the key good this recently:
the gateway checks a key when a stream opens, so a key revoked since must not keep reading."""

Metadata = tuple[tuple[str, str], ...]


def metadata_for(key: str | None) -> Metadata | None:
    """The gRPC metadata that presents ``key`` to the gateway (None without a key)."""
    return None if key is None else (("authorization", f"Bearer {key}"),)


@dataclass(slots=True)
class Caller:
    """What one API key's requests share: their coalescer and their result watch."""

    key: str | None
    coalescer: ExecuteCoalescer
    watch: ResultWatch
    used: float = 0.0
    verified: float = -float("inf")  # when a unary call with the key last succeeded

    def vouched(self, now: float) -> bool:
        """Whether the key was shown good within ``RECHECK_SECONDS`` (always, without a key)."""
        return self.key is None or now - self.verified < RECHECK_SECONDS

    @property
    def busy(self) -> bool:
        """Whether requests of this caller are waiting or in flight."""
        return not self.coalescer.idle or not self.watch.idle

    async def close(self) -> None:
        await self.coalescer.close()
        await self.watch.close()


def _add(total: object, counts: object) -> None:
    for f in fields(total):  # type: ignore[arg-type]
        setattr(total, f.name, getattr(total, f.name) + getattr(counts, f.name))


class Callers:
    """The callers by key (a SHA-256 of it: the table holds no key as its index)."""

    def __init__(
        self,
        make: Callable[[str | None], Caller],
        *,
        max_callers: int = MAX_CALLERS,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self._make = make
        self._max = max_callers
        self._idle_seconds = idle_seconds
        self._callers: OrderedDict[bytes, Caller] = OrderedDict()  # least recently used first
        self._closing: set[asyncio.Task[None]] = set()
        self._stopped = False
        self._pruned = 0.0
        self._executes = CoalescerCounts()  # of the callers dropped so far
        self._watches = WatchCounts()

    def __len__(self) -> int:
        return len(self._callers)

    def get(self, key: str | None) -> Caller:
        """The caller of ``key`` (None: no key), made on first use."""
        index = b"" if key is None else hashlib.sha256(key.encode()).digest()
        caller = self._callers.get(index)
        now = time.monotonic()
        if caller is None:
            caller = self._callers[index] = self._make(key)
            if self._stopped:
                caller.watch.stop()
        else:
            self._callers.move_to_end(index)
        caller.used = now
        excess = len(self._callers) - self._max
        if excess > 0 or now - self._pruned > 1.0:  # a look at every caller, once a second
            self._pruned = now
            self._prune(now, excess)
        return caller

    def _prune(self, now: float, excess: int) -> None:
        for index, caller in list(self._callers.items())[:-1]:  # never the one just used
            stale = now - caller.used > self._idle_seconds
            if caller.busy or not (stale or excess > 0):
                continue
            del self._callers[index]
            excess -= 1
            self._drop(caller)

    def _drop(self, caller: Caller) -> None:
        _add(self._executes, caller.coalescer.counts)
        _add(self._watches, caller.watch.counts)
        task = asyncio.get_running_loop().create_task(caller.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @property
    def executes(self) -> CoalescerCounts:
        """The execute counts of every caller, those dropped included."""
        total = CoalescerCounts()
        _add(total, self._executes)
        for caller in self._callers.values():
            _add(total, caller.coalescer.counts)
        return total

    @property
    def watches(self) -> WatchCounts:
        """The watch counts of every caller, those dropped included."""
        total = WatchCounts()
        _add(total, self._watches)
        for caller in self._callers.values():
            _add(total, caller.watch.counts)
        return total

    def stop(self) -> None:
        """The shim is stopping: every long poll ends now, and no new one waits on a stream."""
        self._stopped = True
        for caller in self._callers.values():
            caller.watch.stop()

    async def close(self) -> None:
        """Closes every caller (cancelling what is still waiting or in flight)."""
        callers = list(self._callers.values())
        for caller in callers:
            _add(self._executes, caller.coalescer.counts)
            _add(self._watches, caller.watch.counts)
        self._callers.clear()
        await asyncio.gather(*(c.close() for c in callers), *self._closing)
