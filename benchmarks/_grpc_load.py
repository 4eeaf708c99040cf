"""Load through the gateway's gRPC API (raw grpc.aio stubs): throughput and round trips."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import grpc
from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from google.protobuf import duration_pb2

from ._concurrency import drain
from ._stats import rate, summarize_ms

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
_TERMINAL = {common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED}
_LONG_POLL = duration_pb2.Duration(seconds=10)


def _channel(gateway: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(gateway, options=CHANNEL_OPTIONS)


_RETRIES = 20


async def _result(
    stub: gateway_pb2_grpc.GatewayServiceStub,
    task_id: str,
    deadline: float,
    retried: Counter[str] | None = None,
) -> common_pb2.TaskState:
    """The task's state once terminal, by long polls, or its last state at ``deadline``.

    GetResult is safe to repeat, so UNAVAILABLE is retried (as the REST shim's channel does),
    up to ``_RETRIES`` times; each retry is counted in ``retried`` so that none goes unseen.
    """
    request = gateway_pb2.GetResultRequest(task_id=task_id, wait=_LONG_POLL)
    failures = 0
    while True:
        try:
            reply = await stub.GetResult(request, timeout=15.0)
        except grpc.aio.AioRpcError as exc:
            failures += 1
            if exc.code() != grpc.StatusCode.UNAVAILABLE or failures > _RETRIES:
                raise
            if retried is not None:
                retried[f"GetResult {exc.code().name}: {exc.details()}"] += 1
            await asyncio.sleep(0.01 * failures)  # retry backoff
            continue
        if reply.task.status in _TERMINAL or time.monotonic() > deadline:
            return reply.task


async def collect_results(
    stub: gateway_pb2_grpc.GatewayServiceStub,
    task_ids: Sequence[str],
    window: int,
    deadline: float,
    retried: Counter[str] | None = None,
) -> Counter[str]:
    """Final status names of ``task_ids`` (``ERROR:<code>`` for a failed call)."""
    statuses: Counter[str] = Counter()

    async def one(task_id: str) -> None:
        try:
            state = await _result(stub, task_id, deadline, retried)
            statuses[common_pb2.TaskStatus.Name(state.status)] += 1
        except grpc.aio.AioRpcError as exc:
            statuses[f"ERROR:{exc.code().name}"] += 1

    await drain(task_ids, one, window)
    return statuses


async def throughput(
    gateway: str,
    function_id: str,
    payload: bytes,
    count: int,
    *,
    batch: int = 0,
    window: int = 256,
    limit_seconds: float = 120.0,
) -> dict[str, Any]:
    """Submits ``count`` tasks (one call each, or ExecuteBatch of ``batch``), then reads all."""
    errors: Counter[str] = Counter()
    retried: Counter[str] = Counter()
    task_ids: list[str] = []
    deadline = time.monotonic() + limit_seconds
    async with _channel(gateway) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)

        async def submit_one(_: int) -> None:
            request = gateway_pb2.ExecuteFunctionRequest(function_id=function_id, payload=payload)
            try:
                reply = await stub.ExecuteFunction(request, timeout=30.0)
                task_ids.append(reply.task_id)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += 1

        async def submit_batch(size: int) -> None:
            request = gateway_pb2.ExecuteBatchRequest(
                function_id=function_id, payloads=[payload] * size
            )
            try:
                reply = await stub.ExecuteBatch(request, timeout=30.0)
                task_ids.extend(reply.task_ids)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += size

        started = time.perf_counter()
        submitted: float | None = None
        timed_out = False
        statuses: Counter[str] = Counter()
        try:
            async with asyncio.timeout(limit_seconds):
                if batch:
                    sizes = [min(batch, count - i) for i in range(0, count, batch)]
                    await drain(sizes, submit_batch, 4)
                else:
                    await drain(range(count), submit_one, window)
                submitted = time.perf_counter()
                statuses = await collect_results(stub, task_ids, window, deadline, retried)
        except TimeoutError:
            timed_out = True
        finished = time.perf_counter()
        if submitted is None:
            submitted = finished
    completed = statuses.get("TASK_STATUS_COMPLETED", 0)
    return {
        "tasks": count,
        "batch": batch,
        "window": window,
        "seconds": finished - started,
        "submit_seconds": submitted - started,
        "tasks_per_s": rate(completed, finished - started),
        "submits_per_s": rate(len(task_ids), submitted - started),
        "completed": completed,
        "statuses": dict(statuses),
        "submit_errors": dict(errors),
        "retried": dict(retried),
        "lost": count - completed,
        "timed_out": timed_out,
    }


def _phases(state: common_pb2.TaskState, sent: float, received: float) -> dict[str, float]:
    """Where one round trip's time went, in ms, from the task's stored timestamps.

    The stamps are wall-clock milliseconds taken by the gateway (created) and the dispatcher
    (started, finished), so each phase is +-1 ms per sample; averaged over hundreds of
    samples they still show which hop takes the time.
    """
    created = state.created_time.ToMilliseconds()
    started = state.started_time.ToMilliseconds()
    finished = state.finished_time.ToMilliseconds()
    if not (created and started and finished):
        return {}
    return {
        "submit_to_stored": created - sent * 1000.0,
        "stored_to_started": float(started - created),
        "started_to_finished": float(finished - started),
        "finished_to_client": received * 1000.0 - finished,
    }


async def round_trips(
    gateway: str,
    function_id: str,
    payload: bytes,
    count: int,
    *,
    via: str,
    warmup: int = 20,
    limit_seconds: float = 60.0,
) -> dict[str, Any]:
    """One client, one task at a time: submit, then its result by ``via`` (get_result|watch)."""
    samples: list[float] = []
    phases: list[dict[str, float]] = []
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + limit_seconds
    async with _channel(gateway) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        request = gateway_pb2.ExecuteFunctionRequest(function_id=function_id, payload=payload)
        for index in range(warmup + count):
            if time.monotonic() > deadline:
                break
            sent = time.time()
            started = time.perf_counter()
            try:
                reply = await stub.ExecuteFunction(request, timeout=10.0)
                if via == "watch":
                    watch = gateway_pb2.WatchTaskRequest(task_id=reply.task_id)
                    state = common_pb2.TaskState()
                    async for update in stub.WatchTask(watch, timeout=15.0):
                        state = update.task
                        if state.status in _TERMINAL:
                            break
                else:
                    state = await _result(stub, reply.task_id, deadline)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += 1
                continue
            if index >= warmup:
                samples.append(time.perf_counter() - started)
                phases.append(_phases(state, sent, time.time()))
    return {
        "via": via,
        **summarize_ms(samples),
        "phases_mean_ms": _mean_phases(phases),
        "errors": dict(errors),
        "wanted": count,
    }


def _mean_phases(phases: list[dict[str, float]]) -> dict[str, float]:
    usable = [p for p in phases if p]
    if not usable:
        return {}
    return {key: sum(p[key] for p in usable) / len(usable) for key in usable[0]}


async def makespan(
    gateway: str, function_id: str, payload: bytes, count: int, limit_seconds: float = 60.0
) -> dict[str, Any]:
    """Wall time from submitting ``count`` tasks in one ExecuteBatch to the last result."""
    deadline = time.monotonic() + limit_seconds
    retried: Counter[str] = Counter()
    async with _channel(gateway) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        started = time.perf_counter()
        reply = await stub.ExecuteBatch(
            gateway_pb2.ExecuteBatchRequest(function_id=function_id, payloads=[payload] * count),
            timeout=30.0,
        )
        statuses = await collect_results(stub, list(reply.task_ids), count, deadline, retried)
        seconds = time.perf_counter() - started
    return {
        "tasks": count,
        "seconds": seconds,
        "statuses": dict(statuses),
        "completed": statuses.get("TASK_STATUS_COMPLETED", 0),
        "retried": dict(retried),
    }


async def warm_up(gateway: str, function_id: str, payload: bytes, count: int = 20) -> None:
    """A few tasks end to end, so every process has loaded the function before measuring."""
    await throughput(gateway, function_id, payload, count, window=4, limit_seconds=30.0)
