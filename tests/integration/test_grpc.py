"""The gateway over gRPC with the generated stubs: round trips, WatchTask, batches, errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dill
import grpc
import pytest
from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from google.protobuf import duration_pb2

from services.common.errors import error_reason
from services.launcher import Platform


@pytest.fixture
def stub(shared_platform: Platform) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    with grpc.insecure_channel(shared_platform.gateway_target) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def _register(stub: gateway_pb2_grpc.GatewayServiceStub, fn: object) -> str:
    reply = stub.RegisterFunction(
        gateway_pb2.RegisterFunctionRequest(name="fn", payload=dill.dumps(fn)), timeout=10
    )
    return str(reply.function_id)


def _args(*args: object, **kwargs: object) -> bytes:
    return bytes(dill.dumps((args, kwargs)))


def test_round_trip_with_blocking_get_result(stub: gateway_pb2_grpc.GatewayServiceStub) -> None:
    def square(x: int) -> int:
        return x * x

    function_id = _register(stub, square)
    task_id = stub.ExecuteFunction(
        gateway_pb2.ExecuteFunctionRequest(function_id=function_id, payload=_args(9)), timeout=10
    ).task_id
    reply = stub.GetResult(
        gateway_pb2.GetResultRequest(task_id=task_id, wait=duration_pb2.Duration(seconds=30)),
        timeout=40,
    )
    assert reply.task.status == common_pb2.TASK_STATUS_COMPLETED
    assert dill.loads(reply.task.result) == 81
    assert reply.task.attempts == 1
    assert reply.task.worker_id


def test_watch_task_streams_each_status_until_terminal(
    stub: gateway_pb2_grpc.GatewayServiceStub,
) -> None:
    def nap() -> str:
        import time

        time.sleep(0.5)
        return "ok"

    function_id = _register(stub, nap)
    task_id = stub.ExecuteFunction(
        gateway_pb2.ExecuteFunctionRequest(function_id=function_id, payload=_args()), timeout=10
    ).task_id
    states = list(stub.WatchTask(gateway_pb2.WatchTaskRequest(task_id=task_id), timeout=30))
    statuses = [s.task.status for s in states]
    assert statuses[-1] == common_pb2.TASK_STATUS_COMPLETED
    assert statuses == sorted(statuses)  # only forward
    assert len(set(statuses)) == len(statuses)
    assert dill.loads(states[-1].task.result) == "ok"


def test_execute_batch_keeps_order(stub: gateway_pb2_grpc.GatewayServiceStub) -> None:
    def neg(x: int) -> int:
        return -x

    function_id = _register(stub, neg)
    reply = stub.ExecuteBatch(
        gateway_pb2.ExecuteBatchRequest(
            function_id=function_id, payloads=[_args(i) for i in range(50)]
        ),
        timeout=10,
    )
    assert len(reply.task_ids) == 50
    results = []
    for task_id in reply.task_ids:
        state = stub.GetResult(
            gateway_pb2.GetResultRequest(task_id=task_id, wait=duration_pb2.Duration(seconds=30)),
            timeout=40,
        ).task
        results.append(dill.loads(state.result))
    assert results == [-i for i in range(50)]


def test_errors_carry_codes_and_reasons(stub: gateway_pb2_grpc.GatewayServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetStatus(gateway_pb2.GetStatusRequest(task_id=str(uuid.uuid4())), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(caught.value) == "TASK_NOT_FOUND"

    with pytest.raises(grpc.RpcError) as caught:
        stub.RegisterFunction(
            gateway_pb2.RegisterFunctionRequest(name="x", payload=b"payload"), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(caught.value) == "PAYLOAD_NOT_PICKLE"

    with pytest.raises(grpc.RpcError) as caught:
        stub.ExecuteFunction(
            gateway_pb2.ExecuteFunctionRequest(function_id="nope", payload=_args()), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(caught.value) == "FUNCTION_NOT_FOUND"


def test_list_workers(stub: gateway_pb2_grpc.GatewayServiceStub, shared_platform: Platform) -> None:
    reply = stub.ListWorkers(gateway_pb2.ListWorkersRequest(), timeout=10)
    assert reply.mode == "push"
    assert [w.capacity for w in reply.workers] == [2]
    assert reply.workers[0].worker_id == shared_platform.workers[0].name
