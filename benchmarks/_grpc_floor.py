"""The gRPC floor: a bare grpc.aio GatewayService that answers at once, with nothing behind it.

``python -m benchmarks._grpc_floor --port P`` serves ExecuteFunction (a fresh id),
ExecuteBatch, GetResult and WatchTask (COMPLETED at once) with the services' server options. The
same gRPC load against it gives the cost of gRPC itself on this machine, client and server.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import uuid
from collections.abc import AsyncIterator

import grpc
from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

from services.common.grpc_server import SERVER_OPTIONS

_NONE_RESULT = b"\x80\x04N."  # dill.dumps(None)


class FloorGateway(gateway_pb2_grpc.GatewayServiceServicer):
    async def ExecuteFunction(
        self, request: gateway_pb2.ExecuteFunctionRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ExecuteFunctionResponse:
        return gateway_pb2.ExecuteFunctionResponse(task_id=str(uuid.uuid4()))

    async def ExecuteBatch(
        self, request: gateway_pb2.ExecuteBatchRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ExecuteBatchResponse:
        return gateway_pb2.ExecuteBatchResponse(
            task_ids=[str(uuid.uuid4()) for _ in request.payloads]
        )

    async def GetResult(
        self, request: gateway_pb2.GetResultRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.GetResultResponse:
        return gateway_pb2.GetResultResponse(task=_done(request.task_id))

    async def WatchTask(
        self, request: gateway_pb2.WatchTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.WatchTaskResponse]:
        yield gateway_pb2.WatchTaskResponse(task=_done(request.task_id))

    async def RegisterFunction(
        self, request: gateway_pb2.RegisterFunctionRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.RegisterFunctionResponse:
        return gateway_pb2.RegisterFunctionResponse(function_id=str(uuid.uuid4()))


def _done(task_id: str) -> common_pb2.TaskState:
    return common_pb2.TaskState(
        task_id=task_id, status=common_pb2.TASK_STATUS_COMPLETED, result=_NONE_RESULT
    )


async def serve(port: int) -> None:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_insecure_port(f"127.0.0.1:{port}")
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(FloorGateway(), server)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="grpc-floor")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
