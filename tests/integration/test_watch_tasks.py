"""WatchTasks: many tasks followed on one bidirectional stream, against the real platform."""

from __future__ import annotations

import queue
from collections import defaultdict
from collections.abc import Iterator

import dill
import grpc
import pytest
from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

from services.common.errors import error_reason
from services.launcher import Platform

QUEUED, RUNNING = common_pb2.TASK_STATUS_QUEUED, common_pb2.TASK_STATUS_RUNNING
COMPLETED, FAILED = common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED
_ORDER = {QUEUED: 0, RUNNING: 1, COMPLETED: 2, FAILED: 2}


@pytest.fixture
def stub(shared_platform: Platform) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    with grpc.insecure_channel(shared_platform.gateway_target) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def _register(stub: gateway_pb2_grpc.GatewayServiceStub, fn: object) -> str:
    reply = stub.RegisterFunction(
        gateway_pb2.RegisterFunctionRequest(name="fn", payload=dill.dumps(fn)), timeout=10
    )
    return str(reply.function_id)


def _batch(stub: gateway_pb2_grpc.GatewayServiceStub, function_id: str, calls: list) -> list:
    reply = stub.ExecuteBatch(
        gateway_pb2.ExecuteBatchRequest(
            function_id=function_id, payloads=[dill.dumps((args, {})) for args in calls]
        ),
        timeout=30,
    )
    return list(reply.task_ids)


class Requests:
    """A request stream fed from the test: ``add`` sends ids, ``end`` half-closes."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[gateway_pb2.WatchTasksRequest | None] = queue.SimpleQueue()

    def add(self, *task_ids: str) -> None:
        self._queue.put(gateway_pb2.WatchTasksRequest(task_ids=task_ids))

    def end(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[gateway_pb2.WatchTasksRequest]:
        while (request := self._queue.get(timeout=120)) is not None:
            yield request


def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def test_one_stream_follows_many_tasks_to_their_terminal_states(
    stub: gateway_pb2_grpc.GatewayServiceStub,
) -> None:
    function_id = _register(stub, nap)
    first = _batch(stub, function_id, [(0.2,)] * 6)
    done_before = _batch(stub, function_id, [(0.0,)])
    assert (
        stub.GetResult(
            gateway_pb2.GetResultRequest(task_id=done_before[0], wait={"seconds": 30}), timeout=40
        ).task.status
        == COMPLETED
    )

    requests = Requests()
    requests.add(*first, "no-such-task")
    stream = stub.WatchTasks(iter(requests), timeout=120)
    seen: dict[str, list[common_pb2.TaskState]] = defaultdict(list)
    unknown: list[str] = []
    later: list[str] = []
    for response in stream:
        for state in response.tasks:
            seen[state.task_id].append(state)
        unknown.extend(response.unknown_task_ids)
        if not later:  # ids added on the open stream, one of them already ended
            later = _batch(stub, function_id, [(0.1,)] * 3)
            requests.add(*later, done_before[0])
        ended = [t for t, states in seen.items() if states[-1].status in (COMPLETED, FAILED)]
        if len(ended) == len(first) + len(later) + 1:
            requests.end()  # half-close: the stream then ends, every watched task having ended
    assert stream.code() == grpc.StatusCode.OK
    assert unknown == ["no-such-task"]
    assert set(seen) == {*first, *later, done_before[0]}
    for task_id, states in seen.items():
        statuses = [s.status for s in states]
        assert statuses[-1] == COMPLETED, (task_id, statuses)
        assert len(set(statuses)) == len(statuses)  # each state once: changes only
        assert [_ORDER[s] for s in statuses] == sorted(_ORDER[s] for s in statuses)
        assert states[-1].attempts == 1 and states[-1].worker_id
        assert dill.loads(states[-1].result) in (0.0, 0.1, 0.2)
    assert [s.status for s in seen[done_before[0]]] == [COMPLETED]  # its current state only


def test_a_failed_task_ends_with_its_error(stub: gateway_pb2_grpc.GatewayServiceStub) -> None:
    def boom() -> None:
        raise ValueError("no")

    (task_id,) = _batch(stub, _register(stub, boom), [()])
    requests = Requests()
    requests.add(task_id)
    requests.end()  # half-closed at once: the stream still runs until the task ends
    states = [s for r in stub.WatchTasks(iter(requests), timeout=60) for s in r.tasks]
    assert states[-1].status == FAILED
    assert states[-1].error.cause == common_pb2.FAILURE_CAUSE_RAISED
    assert isinstance(dill.loads(states[-1].result), ValueError)


@pytest.mark.parametrize("bad", ["", "x" * 200])
def test_a_bad_id_is_invalid_argument(stub: gateway_pb2_grpc.GatewayServiceStub, bad: str) -> None:
    requests = Requests()
    requests.add("fine-id", bad)
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.WatchTasks(iter(requests), timeout=30))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(caught.value) == "INVALID_ID"


def test_a_malformed_request_is_invalid_argument(shared_platform: Platform) -> None:
    with grpc.insecure_channel(shared_platform.gateway_target) as channel:
        watch = channel.stream_stream(
            "/faas.v1.GatewayService/WatchTasks",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.RpcError) as caught:
            list(watch(iter([b"\x0a\x05ab"]), timeout=30))  # a string shorter than its length
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(caught.value) == "MALFORMED_REQUEST"


def test_an_empty_stream_ends_at_once(stub: gateway_pb2_grpc.GatewayServiceStub) -> None:
    stream = stub.WatchTasks(iter([]), timeout=30)
    assert list(stream) == []
    assert stream.code() == grpc.StatusCode.OK
