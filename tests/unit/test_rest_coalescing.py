"""The REST shim's execute coalescer and shared result watch, against in-process fakes of the
gateway calls (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine

import grpc
import pytest
from faas.v1 import common_pb2, gateway_pb2

from services.gateway.rest._coalesce import ExecuteCoalescer
from services.gateway.rest._convert import duration
from services.gateway.rest._results import Miss, ResultWatch


def _sync(test: Callable[[], Coroutine[object, object, None]]) -> Callable[[], None]:
    """Runs an async test on a loop of its own (the unit tests have no asyncio plugin)."""

    def run() -> None:
        asyncio.run(test())

    run.__doc__ = test.__doc__
    return run


def _error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class FakeGateway:
    """Answers ExecuteFunction / ExecuteBatch; ``bad`` payloads are refused as the gateway does
    (a batch holding one is refused as a whole)."""

    def __init__(self, bad: frozenset[bytes] = frozenset()) -> None:
        self.bad = bad
        self.functions: list[gateway_pb2.ExecuteFunctionRequest] = []
        self.batches: list[gateway_pb2.ExecuteBatchRequest] = []
        self.gate: asyncio.Event | None = None  # when set up, calls wait for it
        self.in_flight = 0
        self.most_in_flight = 0
        self.batch_error: grpc.aio.AioRpcError | None = None

    async def _enter(self) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.in_flight -= 1

    async def execute_function_call(
        self, request: gateway_pb2.ExecuteFunctionRequest
    ) -> gateway_pb2.ExecuteFunctionResponse:
        self.functions.append(request)
        await self._enter()
        if request.payload in self.bad:
            raise _error(grpc.StatusCode.INVALID_ARGUMENT, f"bad payload {request.payload!r}")
        key = request.request_id or f"f{len(self.functions)}"
        return gateway_pb2.ExecuteFunctionResponse(task_id=f"task-{key}-{request.payload.decode()}")

    async def execute_batch_call(
        self, request: gateway_pb2.ExecuteBatchRequest
    ) -> gateway_pb2.ExecuteBatchResponse:
        self.batches.append(request)
        await self._enter()
        if self.batch_error is not None:
            raise self.batch_error
        if any(p in self.bad for p in request.payloads):
            raise _error(grpc.StatusCode.INVALID_ARGUMENT, "bad payload in the batch")
        ids = [
            f"task-{request.request_id}#{i}-{p.decode()}" for i, p in enumerate(request.payloads)
        ]
        return gateway_pb2.ExecuteBatchResponse(task_ids=ids)


async def _burst(
    coalescer: ExecuteCoalescer, payloads: list[bytes], function_id: str = "fn"
) -> list[str | BaseException]:
    calls = [coalescer.execute(function_id, p, None, None) for p in payloads]
    return list(await asyncio.gather(*calls, return_exceptions=True))


@_sync
async def test_a_lone_request_goes_at_once_as_execute_function_without_a_request_id() -> None:
    gateway = FakeGateway()
    coalescer = ExecuteCoalescer(gateway, linger=60.0)
    async with asyncio.timeout(5):
        task_id = await coalescer.execute("fn", b"a", None, None)
    assert task_id == "task-f1-a"
    assert [r.request_id for r in gateway.functions] == [""]
    assert gateway.batches == []


@_sync
async def test_requests_arriving_while_a_call_is_in_flight_go_as_one_batch() -> None:
    gateway = FakeGateway()
    gateway.gate = asyncio.Event()
    coalescer = ExecuteCoalescer(gateway, linger=60.0, max_items=10)
    first = asyncio.ensure_future(coalescer.execute("fn", b"first", None, None))
    async with asyncio.timeout(5):
        while not gateway.functions:
            await asyncio.sleep(0)
        rest = asyncio.ensure_future(_burst(coalescer, [str(i).encode() for i in range(10)]))
        while not gateway.batches:  # the tenth request fills the batch, which goes at once
            await asyncio.sleep(0)
        gateway.gate.set()
        results = await rest
        assert await first == "task-f1-first"
    (batch,) = gateway.batches
    assert list(batch.payloads) == [str(i).encode() for i in range(10)]
    assert batch.request_id
    assert results == [f"task-{batch.request_id}#{i}-{i}" for i in range(10)]
    assert coalescer.counts.requests == 11
    assert (coalescer.counts.batch_calls, coalescer.counts.function_calls) == (1, 1)


@_sync
async def test_requests_of_different_functions_time_limits_or_placements_never_share() -> None:
    gateway = FakeGateway()
    gateway.gate = asyncio.Event()
    coalescer = ExecuteCoalescer(gateway, linger=0.001, max_in_flight=8)
    first = asyncio.ensure_future(coalescer.execute("fn", b"x", None, None))
    placement = common_pb2.Placement(labels={"gpu": "h200"})
    calls = [
        coalescer.execute("fn", b"1", None, None),
        coalescer.execute("fn", b"2", None, None),
        coalescer.execute("other", b"3", None, None),
        coalescer.execute("fn", b"4", duration(5), None),
        coalescer.execute("fn", b"5", None, placement),
        coalescer.execute("fn", b"6", duration(5), None),
    ]
    async with asyncio.timeout(5):
        pending = asyncio.ensure_future(asyncio.gather(*calls))
        while len(gateway.batches) + len(gateway.functions) < 5:
            await asyncio.sleep(0.001)
        gateway.gate.set()
        await pending
        await first
    groups = sorted(
        [
            (r.function_id, r.timeout.seconds, r.placement.labels.get("gpu", ""), tuple(r.payloads))
            for r in gateway.batches
        ]
        + [
            (r.function_id, r.timeout.seconds, r.placement.labels.get("gpu", ""), (r.payload,))
            for r in gateway.functions
        ]
    )
    assert groups == [
        ("fn", 0, "", (b"1", b"2")),
        ("fn", 0, "", (b"x",)),
        ("fn", 0, "h200", (b"5",)),
        ("fn", 5, "", (b"4", b"6")),
        ("other", 0, "", (b"3",)),
    ]


@_sync
async def test_a_batch_refused_for_one_bad_item_is_resent_one_by_one_under_its_keys() -> None:
    gateway = FakeGateway(bad=frozenset({b"bad"}))
    gateway.gate = asyncio.Event()
    coalescer = ExecuteCoalescer(gateway, linger=60.0, max_items=3)
    first = asyncio.ensure_future(coalescer.execute("fn", b"first", None, None))
    async with asyncio.timeout(5):
        while not gateway.functions:
            await asyncio.sleep(0)
        gateway.gate.set()
        results = await _burst(coalescer, [b"a", b"bad", b"c"])
        await first
    (batch,) = gateway.batches
    rid = batch.request_id
    assert results[0] == f"task-{rid}#0-a"
    assert results[2] == f"task-{rid}#2-c"
    error = results[1]
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "bad payload b'bad'"  # the error it would have had alone
    assert sorted(r.request_id for r in gateway.functions[1:]) == [f"{rid}#{i}" for i in range(3)]


@_sync
async def test_an_error_of_the_whole_batch_is_every_requests_answer_without_resending() -> None:
    gateway = FakeGateway()
    gateway.gate = asyncio.Event()
    gateway.batch_error = _error(grpc.StatusCode.UNAVAILABLE, "the task store is unavailable")
    coalescer = ExecuteCoalescer(gateway, linger=60.0, max_items=4)
    first = asyncio.ensure_future(coalescer.execute("fn", b"first", None, None))
    async with asyncio.timeout(5):
        while not gateway.functions:
            await asyncio.sleep(0)
        gateway.gate.set()
        results = await _burst(coalescer, [b"1", b"2", b"3", b"4"])
        await first
    assert all(r is gateway.batch_error for r in results)
    assert len(gateway.functions) == 1


@_sync
async def test_calls_in_flight_stay_bounded_and_batches_grow_with_load() -> None:
    gateway = FakeGateway()
    gateway.gate = asyncio.Event()
    coalescer = ExecuteCoalescer(gateway, linger=0.001, max_in_flight=2)
    async with asyncio.timeout(10):
        pending = asyncio.ensure_future(_burst(coalescer, [str(i).encode() for i in range(500)]))
        while gateway.in_flight < 2:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)  # the rest linger and pile up behind the two calls
        gateway.gate.set()
        results = await pending
    assert all(isinstance(r, str) for r in results)
    assert len(set(results)) == 500
    assert gateway.most_in_flight == 2
    assert len(gateway.batches) + len(gateway.functions) < 500


@_sync
async def test_a_request_cancelled_before_its_batch_went_is_not_sent() -> None:
    gateway = FakeGateway()
    gateway.gate = asyncio.Event()
    coalescer = ExecuteCoalescer(gateway, linger=60.0, max_in_flight=1)
    first = asyncio.ensure_future(coalescer.execute("fn", b"first", None, None))
    async with asyncio.timeout(5):
        while not gateway.functions:
            await asyncio.sleep(0)
        kept = asyncio.ensure_future(coalescer.execute("fn", b"kept", None, None))
        gone = asyncio.ensure_future(coalescer.execute("fn", b"gone", None, None))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0.01)
        await coalescer.close()  # cancels what still waits: the linger has not ended
        with pytest.raises(asyncio.CancelledError):
            await kept
        gateway.gate.set()
        await asyncio.gather(first, return_exceptions=True)
    assert [r.payload for r in gateway.functions] == [b"first"]
    assert gateway.batches == []


# --- the shared result watch -------------------------------------------------------------------


class FakeStream:
    """A WatchTasks call: ``answer`` maps each requested id to a state (or None: unknown)."""

    def __init__(
        self,
        requests: AsyncIterator[gateway_pb2.WatchTasksRequest],
        answer: Callable[[str], common_pb2.TaskState | None],
    ) -> None:
        self._requests = requests
        self._answer = answer
        self.asked: list[str] = []
        self.requests = 0

    def __aiter__(self) -> AsyncIterator[gateway_pb2.WatchTasksResponse]:
        return self._replies()

    async def _replies(self) -> AsyncIterator[gateway_pb2.WatchTasksResponse]:
        async for request in self._requests:
            self.asked.extend(request.task_ids)
            self.requests += 1
            reply = gateway_pb2.WatchTasksResponse()
            for task_id in request.task_ids:
                state = self._answer(task_id)
                if state is None:
                    reply.unknown_task_ids.append(task_id)
                else:
                    reply.tasks.append(state)
            yield reply

    def cancel(self) -> bool:
        return True


def _state(task_id: str, status: common_pb2.TaskStatus.ValueType) -> common_pb2.TaskState:
    return common_pb2.TaskState(task_id=task_id, status=status)


@_sync
async def test_waits_share_one_stream_and_end_with_the_terminal_state_or_unknown() -> None:
    streams: list[FakeStream] = []

    def answer(task_id: str) -> common_pb2.TaskState | None:
        if task_id.startswith("done"):
            return _state(task_id, common_pb2.TASK_STATUS_COMPLETED)
        if task_id.startswith("queued"):
            return _state(task_id, common_pb2.TASK_STATUS_QUEUED)
        return None

    def open_stream(requests: AsyncIterator[gateway_pb2.WatchTasksRequest]) -> FakeStream:
        streams.append(FakeStream(requests, answer))
        return streams[-1]

    watch = ResultWatch(open_stream)  # type: ignore[arg-type]
    async with asyncio.timeout(5):
        outcomes = await asyncio.gather(
            *(watch.wait(f"done-{i}", 5) for i in range(20)),
            watch.wait("nope", 5),
            watch.wait("queued-1", 0.05),
        )
        await watch.close()
    assert [o.status for o in outcomes[:20]] == [common_pb2.TASK_STATUS_COMPLETED] * 20  # type: ignore[union-attr]
    assert [o.task_id for o in outcomes[:20]] == [f"done-{i}" for i in range(20)]  # type: ignore[union-attr]
    assert outcomes[20:] == [Miss.UNKNOWN, Miss.TIMEOUT]
    assert len(streams) == 1
    assert watch.counts.answered == 20


@_sync
async def test_a_stream_that_fails_before_answering_hands_its_waits_back() -> None:
    opened = 0

    class Broken:
        def __aiter__(self) -> Broken:
            return self

        async def __anext__(self) -> gateway_pb2.WatchTasksResponse:
            raise _error(grpc.StatusCode.UNAVAILABLE, "gateway down")

        def cancel(self) -> bool:
            return True

    def open_stream(requests: AsyncIterator[gateway_pb2.WatchTasksRequest]) -> Broken:
        nonlocal opened
        opened += 1
        return Broken()

    watch = ResultWatch(open_stream)  # type: ignore[arg-type]
    async with asyncio.timeout(5):
        assert await watch.wait("t1", 5) is Miss.DOWN
        assert not watch.takes("t2")  # down for a backoff: GetResult meanwhile
        assert await watch.wait("t2", 5) is Miss.DOWN
        await watch.close()
    assert opened == 1


def test_ids_the_gateway_would_refuse_never_go_on_the_shared_stream() -> None:
    watch = ResultWatch(lambda requests: None)  # type: ignore[arg-type,return-value]
    assert watch.takes("a" * 128)
    assert not watch.takes("")
    assert not watch.takes("a" * 129)
    assert not watch.takes("\ud800")


@_sync
async def test_tasks_watched_ahead_go_in_one_request_and_their_long_polls_find_the_end() -> None:
    streams: list[FakeStream] = []

    def open_stream(requests: AsyncIterator[gateway_pb2.WatchTasksRequest]) -> FakeStream:
        streams.append(FakeStream(requests, lambda i: _state(i, common_pb2.TASK_STATUS_COMPLETED)))
        return streams[-1]

    watch = ResultWatch(open_stream)  # type: ignore[arg-type]
    ids = [f"t{i}" for i in range(50)]
    async with asyncio.timeout(5):
        watch.expect(ids[:10])  # opens the stream with these
        await asyncio.sleep(0)
        watch.expect(ids[10:])  # one more request, with all forty
        while len(streams[0].asked) < 50:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)  # lets the replies be read
        outcomes = [await watch.wait(i, 5) for i in ids]
        await watch.close()
    assert [o.task_id for o in outcomes] == ids  # type: ignore[union-attr]
    assert sorted(streams[0].asked) == sorted(
        ids
    )  # each id sent once, none again for its long poll
    assert streams[0].requests == 2
    assert (watch.counts.ahead, watch.counts.found, watch.counts.waits) == (50, 50, 50)
