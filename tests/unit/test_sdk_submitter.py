"""The SDK's submit coalescing (faas._submitter) against a transport that answers in memory."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from faas import errors
from faas._futures import TaskFuture
from faas._submitter import MAX_BYTES, MAX_IN_FLIGHT, MAX_ITEMS, Submitter
from faas.v1 import common_pb2, gateway_pb2


class Transport:
    """Answers ExecuteFunction and ExecuteBatch with task ids made from the request ids (so a
    test sees which idempotency key queued each task); ``gate`` holds the answers."""

    def __init__(self, limit: int | None = None) -> None:
        self.stub = SimpleNamespace(ExecuteBatch="ExecuteBatch", ExecuteFunction="ExecuteFunction")
        self.calls: list[tuple[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.limit = limit

    async def unary(self, method: str, request: Any, **_: object) -> Any:
        self.calls.append((method, request))
        await self.gate.wait()
        batch = method == "ExecuteBatch"
        payloads = list(request.payloads) if batch else [request.payload]
        if self.limit is not None and any(len(p) > self.limit for p in payloads):
            raise errors.PayloadTooLarge("too large", code="RESOURCE_EXHAUSTED")
        if batch:
            ids = [f"{request.request_id}#{i}" for i in range(len(payloads))]
            return gateway_pb2.ExecuteBatchResponse(task_ids=ids)
        return gateway_pb2.ExecuteFunctionResponse(task_id=request.request_id)


class Queued:
    def __init__(self) -> None:
        self.futures: list[TaskFuture] = []

    def __call__(self, futures: Sequence[TaskFuture]) -> None:
        self.futures.extend(futures)


async def _until(predicate: Any, what: str) -> None:
    async with asyncio.timeout(10):
        while not predicate():
            await asyncio.sleep(0.001)


def _setup(transport: Transport) -> tuple[Submitter, Queued]:
    queued = Queued()
    return Submitter(transport, queued), queued  # type: ignore[arg-type]


def test_a_lone_submit_goes_at_once_and_the_rest_wait_for_the_calls_in_flight() -> None:
    async def main() -> None:
        transport = Transport()
        submitter, queued = _setup(transport)
        transport.gate.clear()
        first = TaskFuture()
        submitter.put(first, "f", b"p")
        await _until(lambda: transport.calls, "the first call")
        assert transport.calls[0][0] == "ExecuteFunction"  # alone, without lingering
        futures = [TaskFuture() for _ in range(2 * MAX_ITEMS + 500)]
        for future in futures:
            submitter.put(future, "f", b"p")
        await _until(lambda: len(transport.calls) >= MAX_IN_FLIGHT, "the calls in flight")
        transport.gate.set()
        await _until(lambda: all(f.submitted for f in futures), "every submit")
        assert [f.task_id for f in queued.futures[:1]] == [first.task_id]
        assert len({f.task_id for f in [first, *futures]}) == len(futures) + 1
        sizes = [len(r.payloads) if m == "ExecuteBatch" else 1 for m, r in transport.calls]
        assert sum(sizes) == len(futures) + 1 and max(sizes) <= MAX_ITEMS
        assert len(transport.calls) <= MAX_IN_FLIGHT + 4  # batches, not one call per task
        assert len({r.request_id for _, r in transport.calls}) == len(transport.calls)

    asyncio.run(main())


def test_tasks_go_together_only_with_the_same_function_limit_and_placement() -> None:
    async def main() -> None:
        transport = Transport()
        submitter, _ = _setup(transport)
        transport.gate.clear()
        submitter.put(TaskFuture(), "f", b"p")  # in flight: the next ones linger together
        await _until(lambda: transport.calls, "the first call")
        gpu = common_pb2.Placement(labels={"gpu": "h200"})
        limit = gateway_pb2.ExecuteFunctionRequest(timeout={"seconds": 5}).timeout
        kinds = [("f", None, None), ("g", None, None), ("f", limit, None), ("f", None, gpu)]
        futures = []
        for function_id, timeout, placement in kinds * 3:
            futures.append(TaskFuture())
            submitter.put(futures[-1], function_id, b"p", timeout=timeout, placement=placement)
        transport.gate.set()
        await _until(lambda: all(f.submitted for f in futures), "every submit")
        batches = [r for m, r in transport.calls[1:]]
        assert sorted(len(r.payloads) for r in batches) == [3, 3, 3, 3]
        shapes = {(r.function_id, r.timeout.seconds, tuple(r.placement.labels)) for r in batches}
        assert shapes == {("f", 0, ()), ("g", 0, ()), ("f", 5, ()), ("f", 0, ("gpu",))}

    asyncio.run(main())


def test_a_batch_refused_for_one_task_is_sent_again_task_by_task() -> None:
    async def main() -> None:
        transport = Transport(limit=10)
        submitter, queued = _setup(transport)
        transport.gate.clear()
        submitter.put(TaskFuture(), "f", b"p")
        await _until(lambda: transport.calls, "the first call")
        futures = [TaskFuture() for _ in range(4)]
        for future, payload in zip(futures, [b"ok", b"x" * 11, b"ok", b"ok"], strict=True):
            submitter.put(future, "f", payload)
        transport.gate.set()
        await _until(lambda: all(f.submitted for f in futures), "every submit")
        batch = next(r for m, r in transport.calls if m == "ExecuteBatch")
        assert len(batch.payloads) == 4
        with pytest.raises(errors.PayloadTooLarge):
            futures[1].result(timeout=0)
        with pytest.raises(errors.PayloadTooLarge):
            futures[1].task_id  # noqa: B018
        # The others were queued alone, under the keys they had in the refused batch.
        ids = [futures[i].task_id for i in (0, 2, 3)]
        assert ids == [f"{batch.request_id}#{i}" for i in (0, 2, 3)]
        assert [f for f in queued.futures if f in futures] == [futures[i] for i in (0, 2, 3)]

    asyncio.run(main())


def test_a_big_payload_goes_alone() -> None:
    async def main() -> None:
        transport = Transport()
        submitter, _ = _setup(transport)
        transport.gate.clear()
        submitter.put(TaskFuture(), "f", b"p")
        await _until(lambda: transport.calls, "the first call")
        futures = [TaskFuture() for _ in range(3)]
        for future, payload in zip(futures, [b"a", b"x" * MAX_BYTES, b"b"], strict=True):
            submitter.put(future, "f", payload)
        transport.gate.set()
        await _until(lambda: all(f.submitted for f in futures), "every submit")
        sizes = sorted(
            len(r.payloads) if m == "ExecuteBatch" else 1 for m, r in transport.calls[1:]
        )
        assert sizes == [1, 2]

    asyncio.run(main())


def test_close_fails_what_was_not_answered_and_a_cancelled_task_is_never_sent() -> None:
    async def main() -> None:
        transport = Transport()
        submitter, _ = _setup(transport)
        transport.gate.clear()
        in_flight = TaskFuture()
        submitter.put(in_flight, "f", b"p")
        await _until(lambda: transport.calls, "the first call")
        cancelled, waiting = TaskFuture(), TaskFuture()
        cancelled.cancel()
        submitter.put(cancelled, "f", b"cancelled")
        submitter.put(waiting, "f", b"p")
        await asyncio.sleep(0.01)
        await submitter.close()
        for future in (in_flight, waiting):
            with pytest.raises(errors.ClientClosed):
                future.result(timeout=0)
            with pytest.raises(errors.ClientClosed):
                future.task_id  # noqa: B018
        with pytest.raises(asyncio.CancelledError):
            cancelled.task_id  # noqa: B018
        sent = [
            p
            for m, r in transport.calls
            for p in (r.payloads if m == "ExecuteBatch" else [r.payload])
        ]
        assert b"cancelled" not in sent
        with pytest.raises(errors.ClientClosed):
            submitter.put(TaskFuture(), "f", b"p")

    asyncio.run(main())


def test_submits_from_other_threads_are_taken_by_the_loop() -> None:
    async def main() -> None:
        transport = Transport()
        submitter, queued = _setup(transport)
        futures = [TaskFuture() for _ in range(400)]

        def submit(part: list[TaskFuture]) -> None:
            for future in part:
                submitter.put(future, "f", b"p")

        threads = [threading.Thread(target=submit, args=(futures[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        await _until(lambda: all(f.submitted for f in futures), "every submit")
        for thread in threads:
            thread.join()
        assert len({f.task_id for f in futures}) == 400 and len(queued.futures) == 400

    asyncio.run(main())
