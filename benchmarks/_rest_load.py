"""Load through the REST API with httpx: concurrent clients, batch submits and round trips.

The same functions drive the REST shim and the bare FastAPI floor app, so their ratio shows
what the platform behind the shim costs. Each concurrent client is its own ``httpx.AsyncClient``
with one keep-alive connection: one client shared by 16 lanes spends more time in its own
connection pool than the server takes (measured: ~200 vs ~420 POST+GET pairs/s on the floor).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from ._stats import rate, summarize_ms

T = TypeVar("T")

_TERMINAL = ("COMPLETED", "FAILED")
_LONG_POLL_SECONDS = 10.0


def _client(base_url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0)


class _Clients:
    """``count`` independent clients, closed together."""

    def __init__(self, base_url: str, count: int) -> None:
        self.all = [_client(base_url) for _ in range(count)]

    async def __aenter__(self) -> list[httpx.AsyncClient]:
        return self.all

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(c.aclose() for c in self.all))


async def _lanes(
    items: list[T],
    clients: list[httpx.AsyncClient],
    handle: Callable[[httpx.AsyncClient, T], Awaitable[None]],
) -> None:
    """Each client takes the next item in turn: at most one request in flight per client."""
    iterator = iter(items)

    async def lane(http: httpx.AsyncClient) -> None:
        for item in iterator:
            await handle(http, item)

    await asyncio.gather(*(lane(http) for http in clients))


async def _result(http: httpx.AsyncClient, task_id: str, deadline: float) -> str:
    """The task's final status by long polls (its last status at ``deadline``)."""
    while True:
        reply = await http.get(f"/result/{task_id}", params={"wait": _LONG_POLL_SECONDS})
        if reply.status_code != 200:
            return f"HTTP {reply.status_code}"
        status = str(reply.json()["status"])
        if status in _TERMINAL or time.monotonic() > deadline:
            return status


async def _submit(http: httpx.AsyncClient, function_id: str, payload: str) -> str | None:
    reply = await http.post(
        "/execute_function", json={"function_id": function_id, "payload": payload}
    )
    if reply.status_code != 200:
        return None
    return str(reply.json()["task_id"])


async def clients_throughput(
    base_url: str,
    function_id: str,
    payload: str,
    count: int,
    *,
    clients: int = 16,
    limit_seconds: float = 120.0,
) -> dict[str, Any]:
    """``clients`` concurrent clients, each: execute one task, long-poll its result, repeat."""
    statuses: Counter[str] = Counter()
    deadline = time.monotonic() + limit_seconds
    timed_out = False
    async with _Clients(base_url, clients) as http_clients:

        async def one(http: httpx.AsyncClient, _: int) -> None:
            try:
                task_id = await _submit(http, function_id, payload)
                statuses[await _result(http, task_id, deadline) if task_id else "SUBMIT_ERROR"] += 1
            except httpx.HTTPError as exc:
                statuses[f"ERROR:{type(exc).__name__}"] += 1

        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit_seconds):
                await _lanes(list(range(count)), http_clients, one)
        except TimeoutError:
            timed_out = True
        seconds = time.perf_counter() - started
    completed = statuses.get("COMPLETED", 0)
    return {
        "tasks": count,
        "clients": clients,
        "seconds": seconds,
        "tasks_per_s": rate(completed, seconds),
        "completed": completed,
        "statuses": dict(statuses),
        "lost": count - completed,
        "timed_out": timed_out,
    }


async def batch_throughput(
    base_url: str,
    function_id: str,
    payload: str,
    count: int,
    *,
    batch: int = 500,
    clients: int = 16,
    limit_seconds: float = 120.0,
) -> dict[str, Any]:
    """POST /execute_batch in chunks of ``batch``, then every result by ``clients`` clients."""
    statuses: Counter[str] = Counter()
    task_ids: list[str] = []
    errors = 0
    deadline = time.monotonic() + limit_seconds
    timed_out = False
    submitted: float | None = None
    async with _Clients(base_url, clients) as http_clients:

        async def submit(http: httpx.AsyncClient, size: int) -> None:
            nonlocal errors
            reply = await http.post(
                "/execute_batch", json={"function_id": function_id, "payloads": [payload] * size}
            )
            if reply.status_code == 200:
                task_ids.extend(reply.json()["task_ids"])
            else:
                errors += size

        async def one(http: httpx.AsyncClient, task_id: str) -> None:
            try:
                statuses[await _result(http, task_id, deadline)] += 1
            except httpx.HTTPError as exc:
                statuses[f"ERROR:{type(exc).__name__}"] += 1

        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit_seconds):
                sizes = [min(batch, count - i) for i in range(0, count, batch)]
                await _lanes(sizes, http_clients[:2], submit)
                submitted = time.perf_counter()
                await _lanes(list(task_ids), http_clients, one)
        except TimeoutError:
            timed_out = True
        finished = time.perf_counter()
    submitted = submitted or finished
    completed = statuses.get("COMPLETED", 0)
    return {
        "tasks": count,
        "batch": batch,
        "clients": clients,
        "seconds": finished - started,
        "submit_seconds": submitted - started,
        "tasks_per_s": rate(completed, finished - started),
        "submits_per_s": rate(len(task_ids), submitted - started),
        "completed": completed,
        "statuses": dict(statuses),
        "submit_errors": errors,
        "lost": count - completed,
        "timed_out": timed_out,
    }


async def round_trips(
    base_url: str,
    function_id: str,
    payload: str,
    count: int,
    *,
    warmup: int = 20,
    limit_seconds: float = 60.0,
) -> dict[str, Any]:
    """One client, one task at a time: POST /execute_function then GET /result/{id}?wait=."""
    samples: list[float] = []
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + limit_seconds
    async with _client(base_url) as http:
        for index in range(warmup + count):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                task_id = await _submit(http, function_id, payload)
                status = await _result(http, task_id, deadline) if task_id else "SUBMIT_ERROR"
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                continue
            if status != "COMPLETED":
                errors[status] += 1
                continue
            if index >= warmup:
                samples.append(time.perf_counter() - started)
    return {**summarize_ms(samples), "errors": dict(errors), "wanted": count}


async def register(base_url: str, name: str, payload: str) -> str:
    async with _client(base_url) as http:
        reply = await http.post("/register_function", json={"name": name, "payload": payload})
        reply.raise_for_status()
        return str(reply.json()["function_id"])
