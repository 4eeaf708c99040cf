"""The per-tenant submission rate: a token bucket per tenant, with an injected clock."""

from __future__ import annotations

import pytest

from services.common.errors import QuotaExceeded
from services.gateway.quotas import SubmitRate, TokenBucket, open_tasks_exceeded


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_burst_through_then_the_rate() -> None:
    bucket = TokenBucket.full(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.take(1, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(1, 0.0) == pytest.approx(0.5)  # one token comes in 1/2 s
    assert bucket.take(1, 0.25) == pytest.approx(0.25)  # a refusal takes nothing
    assert bucket.take(1, 0.5) == 0.0
    assert bucket.take(2, 0.5) == pytest.approx(1.0)
    assert bucket.take(1, 100.0) == 0.0
    assert bucket.tokens == pytest.approx(2.0)  # refilled to the burst, not past it


def test_a_take_larger_than_the_burst_waits_for_a_full_bucket_and_leaves_a_debt() -> None:
    bucket = TokenBucket.full(rate=1.0, burst=2.0, now=0.0)
    assert bucket.take(1, 0.0) == 0.0
    assert bucket.take(5, 0.0) == pytest.approx(1.0)  # needs a full bucket: 1 s away
    assert bucket.take(5, 1.0) == 0.0  # 5 go through at once ...
    assert bucket.take(1, 1.0) == pytest.approx(4.0)  # ... and are paid back at the rate
    assert bucket.take(1, 5.0) == 0.0


def test_submit_rate_is_per_tenant_and_refuses_with_a_retry_delay() -> None:
    clock = Clock()
    rate = SubmitRate(1.0, 2.0, clock=clock)
    rate.admit("a", 2)
    with pytest.raises(QuotaExceeded) as refused:
        rate.admit("a", 1)
    assert refused.value.reason == "RATE_LIMITED"
    assert refused.value.retry_after == pytest.approx(1.0)
    assert "tenant 'a'" in refused.value.message
    rate.admit("b", 2)  # b has a bucket of its own
    clock.now += 1.0
    rate.admit("a", 1)
    with pytest.raises(QuotaExceeded):
        rate.admit("a", 1)


def test_a_batch_is_refused_whole() -> None:
    clock = Clock()
    rate = SubmitRate(1.0, 3.0, clock=clock)
    rate.admit("a", 2)
    with pytest.raises(QuotaExceeded):
        rate.admit("a", 2)  # 1 token left: none of the 2 is counted
    rate.admit("a", 1)


def test_no_rate_means_no_limit_and_the_burst_defaults_to_a_second() -> None:
    unlimited = SubmitRate(0.0)
    for _ in range(10_000):
        unlimited.admit("a", 100)
    clock = Clock()
    assert SubmitRate(5.0, clock=clock).burst == 5.0
    assert SubmitRate(0.1, clock=clock).burst == 1.0


def test_the_open_tasks_refusal_names_the_limit() -> None:
    error = open_tasks_exceeded("a", 5)
    assert error.reason == "OPEN_TASKS_LIMIT" and error.retry_after > 0
    assert "5" in error.message
