"""Per-tenant limits on submitting tasks: a rate (a token bucket per tenant, in this gateway
process) and a limit of open tasks (kept exact in Redis by the store's scripts, across every
gateway: see ``TaskStore.create_tasks``).

Over a limit a submission answers :class:`~services.common.errors.QuotaExceeded`
(RESOURCE_EXHAUSTED with a RetryInfo; REST 429 with ``Retry-After``) and nothing is stored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.common.errors import QuotaExceeded

__all__ = [
    "OPEN_TASKS_RETRY_SECONDS",
    "SubmitRate",
    "TokenBucket",
    "open_tasks_exceeded",
]

OPEN_TASKS_RETRY_SECONDS = 1.0
"""The RetryInfo of a refusal for open tasks: when one ends is not known, so a guess."""

_MAX_TENANTS = 100_000  # buckets kept; past it the fullest are dropped (a full one is no news)


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, up to ``burst``; a take of ``n`` tokens needs ``min(n, burst)``
    of them (so a request larger than the burst passes once the bucket is full) and leaves the
    bucket short by the rest, to be earned back before the next take: over time no more than
    ``rate`` a second get through."""

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def take(self, n: int, now: float) -> float:
        """Takes ``n`` tokens and returns 0, or takes none and returns the seconds until the
        take would succeed."""
        self._refill(now)
        needed = min(float(n), self.burst)
        if self.tokens >= needed:
            self.tokens -= n
            return 0.0
        return (needed - self.tokens) / self.rate

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now


class SubmitRate:
    """The submission rate limit of each tenant in this gateway process (``rate`` 0: none)."""

    def __init__(
        self, rate: float, burst: float = 0.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst if burst > 0 else max(1.0, rate)  # default: a second's worth
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, tenant: str, tasks: int) -> None:
        """Counts ``tasks`` submitted by ``tenant``; raises QuotaExceeded (``RATE_LIMITED``,
        counting none of them) when the tenant is over its rate."""
        if self.rate <= 0:
            return
        now = self._clock()
        bucket = self._buckets.get(tenant)
        if bucket is None:
            if len(self._buckets) >= _MAX_TENANTS:
                self._forget_full(now)
            bucket = self._buckets[tenant] = TokenBucket.full(self.rate, self.burst, now)
        wait = bucket.take(tasks, now)
        if wait > 0:
            raise QuotaExceeded(
                f"tenant {tenant!r} submits over its rate of {self.rate:g} tasks a second "
                f"(burst {self.burst:g}); retry in {math.ceil(wait * 1000) / 1000:g} s",
                "RATE_LIMITED",
                wait,
            )

    def _forget_full(self, now: float) -> None:
        for tenant, bucket in list(self._buckets.items()):
            bucket.take(0, now)
            if bucket.tokens >= bucket.burst:
                del self._buckets[tenant]
        if len(self._buckets) >= _MAX_TENANTS:
            self._buckets.clear()


def open_tasks_exceeded(tenant: str, limit: int) -> QuotaExceeded:
    """The refusal of a submission that would take ``tenant`` over ``limit`` open tasks."""
    return QuotaExceeded(
        f"tenant {tenant!r} has its limit of {limit} tasks queued or running; retry once some "
        "have ended",
        "OPEN_TASKS_LIMIT",
        OPEN_TASKS_RETRY_SECONDS,
    )
