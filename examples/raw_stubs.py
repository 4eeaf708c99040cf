"""MPCSFaaS from nothing but the generated stubs (``faas.v1``), grpcio and dill: no SDK.

    .venv/bin/python examples/raw_stubs.py [HOST:PORT]  # default: $FAAS_TARGET or 127.0.0.1:50051

Payloads are raw dill bytes in protobuf ``bytes`` fields; errors are gRPC statuses whose
``google.rpc.ErrorInfo`` reason a program can branch on.
"""

from __future__ import annotations

import os
import sys
import uuid

import dill
import grpc
from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def square(x: int) -> int:
    return x * x


def slow_add(a: int, b: int) -> int:
    import time

    time.sleep(0.5)
    return a + b


def reason(error: grpc.RpcError) -> str:
    """The ErrorInfo reason of a failed call ("" if none)."""
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def main(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)

        # Register: the function pickled by value.
        function_id = stub.RegisterFunction(
            gateway_pb2.RegisterFunctionRequest(
                name="square", payload=dill.dumps(square, recurse=True)
            ),
            timeout=10,
        ).function_id
        print(f"registered square as {function_id}")

        # Execute: the payload is dill.dumps((args, kwargs)); request_id makes a retry safe.
        task_id = stub.ExecuteFunction(
            gateway_pb2.ExecuteFunctionRequest(
                function_id=function_id,
                payload=dill.dumps(((7,), {})),
                request_id=str(uuid.uuid4()),
            ),
            timeout=10,
        ).task_id

        # GetResult with `wait`: a long poll that returns when the task ends.
        task = stub.GetResult(
            gateway_pb2.GetResultRequest(task_id=task_id, wait=duration_pb2.Duration(seconds=30)),
            timeout=40,
        ).task
        print(f"square(7) = {dill.loads(task.result)} [{common_pb2.TaskStatus.Name(task.status)}]")

        # WatchTask: one message per status change, ending after the terminal one.
        add_id = stub.RegisterFunction(
            gateway_pb2.RegisterFunctionRequest(
                name="slow_add", payload=dill.dumps(slow_add, recurse=True)
            ),
            timeout=10,
        ).function_id
        task_id = stub.ExecuteFunction(
            gateway_pb2.ExecuteFunctionRequest(
                function_id=add_id, payload=dill.dumps(((2, 3), {}))
            ),
            timeout=10,
        ).task_id
        for reply in stub.WatchTask(gateway_pb2.WatchTaskRequest(task_id=task_id), timeout=60):
            print(f"watch: {common_pb2.TaskStatus.Name(reply.task.status)}")
        print(f"slow_add(2, 3) = {dill.loads(reply.task.result)}")

        # ExecuteBatch: many tasks of one function, ids in order.
        batch = stub.ExecuteBatch(
            gateway_pb2.ExecuteBatchRequest(
                function_id=function_id, payloads=[dill.dumps(((i,), {})) for i in range(5)]
            ),
            timeout=10,
        )
        squares = []
        for batch_task_id in batch.task_ids:
            state = stub.GetResult(
                gateway_pb2.GetResultRequest(
                    task_id=batch_task_id, wait=duration_pb2.Duration(seconds=30)
                ),
                timeout=40,
            ).task
            squares.append(dill.loads(state.result))
        print(f"batch: {squares}")

        # Errors: a status code and a reason.
        try:
            stub.GetStatus(gateway_pb2.GetStatusRequest(task_id="no-such-task"), timeout=10)
        except grpc.RpcError as error:
            print(f"error: {error.code().name} {reason(error)}")

        workers = stub.ListWorkers(gateway_pb2.ListWorkersRequest(), timeout=10)
        print(f"workers: {len(workers.workers)} ({workers.mode} mode)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FAAS_TARGET", "127.0.0.1:50051"))
