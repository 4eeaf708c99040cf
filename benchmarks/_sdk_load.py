"""Load through the Python SDK (``faas.FaaSClient``), as a user of the platform drives it.

The same shapes as the Ray and Celery comparisons: ``submit()`` x N then every ``result()``
(Ray: ``f.remote()`` x N then ``ray.get``; Celery: ``delay()`` x N then ``get()``), ``map`` of
N (one ExecuteBatch), and one task at a time (submit, then its ``result()``). Each run opens
its own client, warms it up, and is bounded in time; tasks that do not complete are counted,
never waited for past the limit.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from faas import FaaSClient

from ._stats import rate, summarize_ms

_WARM_UP = 20


def _warm(client: FaaSClient, function_id: str) -> None:
    for future in [client.submit(function_id) for _ in range(_WARM_UP)]:
        future.result(timeout=30)


def submit_throughput(
    gateway: str, function_id: str, count: int, limit_seconds: float = 60.0
) -> dict[str, Any]:
    """``submit()`` x ``count``, then ``result()`` of each future in order."""
    errors: Counter[str] = Counter()
    with FaaSClient(gateway) as client:
        _warm(client, function_id)
        deadline = time.monotonic() + limit_seconds
        started = time.perf_counter()
        futures = []
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            try:
                futures.append(client.submit(function_id))
            except Exception as exc:
                errors[f"submit {type(exc).__name__}"] += 1
        submitted = time.perf_counter()
        completed = 0
        for future in futures:
            try:
                future.result(timeout=max(0.01, deadline - time.monotonic()))
                completed += 1
            except Exception as exc:
                errors[f"result {type(exc).__name__}"] += 1
        seconds = time.perf_counter() - started
    return _throughput_result(count, completed, seconds, submitted - started, errors)


def map_throughput(
    gateway: str, function_id: str, count: int, limit_seconds: float = 60.0
) -> dict[str, Any]:
    """``list(client.map(function_id, range(count)))``: ExecuteBatch, results in order."""
    errors: Counter[str] = Counter()
    completed = 0
    with FaaSClient(gateway) as client:
        _warm(client, function_id)
        started = time.perf_counter()
        try:
            for _ in client.map(function_id, range(count), timeout=limit_seconds):
                completed += 1
        except Exception as exc:
            errors[f"map {type(exc).__name__}"] += 1
        seconds = time.perf_counter() - started
    return _throughput_result(count, completed, seconds, None, errors)


def _throughput_result(
    count: int,
    completed: int,
    seconds: float,
    submit_seconds: float | None,
    errors: Counter[str],
) -> dict[str, Any]:
    return {
        "tasks": count,
        "completed": completed,
        "seconds": seconds,
        "submit_seconds": submit_seconds,
        "tasks_per_s": rate(completed, seconds),
        "lost": count - completed,
        "errors": dict(errors),
    }


def round_trips(
    gateway: str, function_id: str, count: int, limit_seconds: float = 60.0
) -> dict[str, Any]:
    """One task at a time: ``client.submit(f).result()``, timed from submit to value."""
    samples: list[float] = []
    errors: Counter[str] = Counter()
    with FaaSClient(gateway) as client:
        _warm(client, function_id)
        deadline = time.monotonic() + limit_seconds
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            began = time.perf_counter()
            try:
                client.submit(function_id).result(timeout=10)
            except Exception as exc:
                errors[type(exc).__name__] += 1
                continue
            samples.append(time.perf_counter() - began)
    return {**summarize_ms(samples), "errors": dict(errors), "wanted": count}
