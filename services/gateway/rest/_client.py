"""The shim's one gRPC channel to the gateway, with a timeout on every call.

Executes go through the coalescer (``_coalesce``: concurrent ones as one ExecuteBatch) and long
polls through the shared WatchTasks stream (``_results``), falling back to GetResult; both are
kept per API key (``_callers``). Every call presents the caller's key (``key``, from the HTTP
``Authorization: Bearer`` header) as ``authorization`` metadata.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import tls
from services.gateway.rest._callers import Caller, Callers, Metadata, metadata_for
from services.gateway.rest._coalesce import ExecuteCoalescer
from services.gateway.rest._convert import duration
from services.gateway.rest._results import Miss, ResultWatch
from services.gateway.rest.settings import RestSettings

__all__ = ["GatewayClient"]

logger = logging.getLogger(__name__)

_GATEWAY_SERVICE: Final = "faas.v1.GatewayService"
_HEALTH_SERVICE: Final = "grpc.health.v1.Health"
_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
_WATCH_STREAM_SECONDS: Final = 3600.0  # the shared WatchTasks stream is re-opened after this
_TERMINAL: Final = (common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED)

# Retry UNAVAILABLE a few times, but only on calls that are safe to repeat: a retried
# ExecuteFunction without a request_id could store a task twice.
_SERVICE_CONFIG: Final = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": _GATEWAY_SERVICE, "method": method}
                    for method in (
                        "RegisterFunction",
                        "GetStatus",
                        "GetResult",
                        "ListWorkers",
                        "GetFunction",
                        "ListTasks",
                        "ListFunctions",
                    )
                ]
                + [{"service": _HEALTH_SERVICE}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)

_CHANNEL_OPTIONS: Final[Sequence[tuple[str, Any]]] = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", _SERVICE_CONFIG),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
)


class GatewayClient:
    """Typed calls to ``faas.v1.GatewayService``; gRPC errors propagate as ``AioRpcError``.

    Create it inside the running event loop (the FastAPI lifespan) and ``close()`` it at shutdown.
    """

    def __init__(self, settings: RestSettings) -> None:
        self._timeout = settings.call_timeout
        self._channel = tls.open_channel(
            settings.gateway_target,
            _CHANNEL_OPTIONS,
            tls.channel_credentials(
                settings.tls_ca, settings.tls_client_cert, settings.tls_client_key
            ),
        )
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)
        self._health: Any = health_pb2_grpc.HealthStub(self._channel)
        self._stopping = asyncio.Event()
        self.callers = Callers(self._caller)
        self.result_calls = 0  # GetResult calls made (long polls not served by the watch)
        logger.info("REST shim talks to the gateway at %s", settings.gateway_target)

    def _caller(self, key: str | None) -> Caller:
        """A coalescer and a result watch whose calls present ``key``."""
        metadata = metadata_for(key)
        sender = _KeyedSender(self, metadata, lambda: caller)
        watch = ResultWatch(
            lambda requests: self._stub.WatchTasks(
                requests, timeout=_WATCH_STREAM_SECONDS, metadata=metadata
            )
        )
        caller = Caller(key, ExecuteCoalescer(sender, on_queued=watch.expect), watch)
        return caller

    @property
    def stopping(self) -> asyncio.Event:
        """Set once the shim is stopping (``stop_waiting``): long-lived streams end then."""
        return self._stopping

    def stop_waiting(self) -> None:
        """The shim is stopping: long polls in flight end now, answering the task's state."""
        self._stopping.set()
        self.callers.stop()

    async def close(self) -> None:
        """Close the channel, cancelling calls still in flight."""
        await self.callers.close()
        await self._channel.close()
        executes, watch = self.callers.executes, self.callers.watches
        logger.info(
            "REST shim sent %d executes in %d ExecuteBatch and %d ExecuteFunction calls; "
            "%d long polls waited on %d WatchTasks streams (%d answered there), "
            "%d GetResult calls; %d tasks watched ahead, %d long polls found their end there",
            executes.requests,
            executes.batch_calls,
            executes.function_calls,
            watch.waits,
            watch.streams,
            watch.answered,
            self.result_calls,
            watch.ahead,
            watch.found,
        )

    async def register_function(
        self,
        name: str,
        payload: bytes,
        timeout: float | None,
        runtime: common_pb2.Runtime | None = None,
        placement: common_pb2.Placement | None = None,
        *,
        key: str | None = None,
    ) -> gateway_pb2.RegisterFunctionResponse:
        """RegisterFunction."""
        request = gateway_pb2.RegisterFunctionRequest(
            name=name, payload=payload, runtime=runtime, placement=placement
        )
        if timeout is not None:
            request.timeout.CopyFrom(duration(timeout))
        return await self._stub.RegisterFunction(
            request, timeout=self._timeout, metadata=metadata_for(key)
        )

    async def get_function(
        self, function_id: str, *, key: str | None = None
    ) -> common_pb2.FunctionInfo:
        """GetFunction."""
        request = gateway_pb2.GetFunctionRequest(function_id=function_id)
        response = await self._stub.GetFunction(
            request, timeout=self._timeout, metadata=metadata_for(key)
        )
        return response.function

    async def execute_function(
        self,
        function_id: str,
        payload: bytes,
        timeout: float | None,
        request_id: str | None,
        placement: common_pb2.Placement | None = None,
        *,
        key: str | None = None,
    ) -> gateway_pb2.ExecuteFunctionResponse:
        """ExecuteFunction, coalesced with concurrent ones of the same API key into ExecuteBatch
        calls; a request with the client's own ``request_id`` goes alone, so that id keeps its
        meaning."""
        limit = duration(timeout) if timeout is not None else None
        caller = self.callers.get(key)
        if request_id:
            request = gateway_pb2.ExecuteFunctionRequest(
                function_id=function_id,
                payload=payload,
                request_id=request_id,
                placement=placement,
                timeout=limit,
            )
            response = await self.execute_function_call(request, metadata_for(key))
            caller.watch.expect([response.task_id])
            return response
        task_id = await caller.coalescer.execute(function_id, payload, limit, placement)
        return gateway_pb2.ExecuteFunctionResponse(task_id=task_id)

    async def execute_function_call(
        self, request: gateway_pb2.ExecuteFunctionRequest, metadata: Metadata | None = None
    ) -> gateway_pb2.ExecuteFunctionResponse:
        """One ExecuteFunction call, as it is."""
        return await self._stub.ExecuteFunction(request, timeout=self._timeout, metadata=metadata)

    async def execute_batch_call(
        self, request: gateway_pb2.ExecuteBatchRequest, metadata: Metadata | None = None
    ) -> gateway_pb2.ExecuteBatchResponse:
        """One ExecuteBatch call, as it is."""
        return await self._stub.ExecuteBatch(request, timeout=self._timeout, metadata=metadata)

    async def execute_batch(
        self,
        function_id: str,
        payloads: list[bytes],
        timeout: float | None,
        request_id: str | None = None,
        placement: common_pb2.Placement | None = None,
        *,
        key: str | None = None,
    ) -> gateway_pb2.ExecuteBatchResponse:
        """ExecuteBatch."""
        request = gateway_pb2.ExecuteBatchRequest(
            function_id=function_id,
            payloads=payloads,
            request_id=request_id or "",
            placement=placement,
        )
        if timeout is not None:
            request.timeout.CopyFrom(duration(timeout))
        response = await self.execute_batch_call(request, metadata_for(key))
        self.callers.get(key).watch.expect(response.task_ids)
        return response

    async def get_status(
        self, task_id: str, *, key: str | None = None
    ) -> gateway_pb2.GetStatusResponse:
        """GetStatus."""
        request = gateway_pb2.GetStatusRequest(task_id=task_id)
        return await self._stub.GetStatus(
            request, timeout=self._timeout, metadata=metadata_for(key)
        )

    async def get_task_output(
        self, task_id: str, *, key: str | None = None
    ) -> gateway_pb2.GetTaskOutputResponse:
        """GetTaskOutput."""
        request = gateway_pb2.GetTaskOutputRequest(task_id=task_id)
        return await self._stub.GetTaskOutput(
            request, timeout=self._timeout, metadata=metadata_for(key)
        )

    async def get_result(
        self, task_id: str, wait: float | None, *, key: str | None = None
    ) -> common_pb2.TaskState:
        """The task's state; with ``wait`` > 0 a long poll, answered from the shared WatchTasks
        stream (GetResult when it is down), which ends early when the shim stops
        (``stop_waiting``): then it answers the task's state at that moment."""
        metadata = metadata_for(key)
        if wait and not self._stopping.is_set():
            deadline = time.monotonic() + wait
            caller = self.callers.get(key)
            if not caller.vouched(time.monotonic()):
                # Its stream was opened with the key as it was then: ask once, which checks
                # the key now (401 once revoked) and may find the task ended already.
                state = await self._result_now(task_id, metadata)
                caller.verified = time.monotonic()
                if state.status in _TERMINAL:
                    return state
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return state
            outcome = await caller.watch.wait(task_id, wait)
            if isinstance(outcome, common_pb2.TaskState):
                return outcome
            left = deadline - time.monotonic()
            if outcome is Miss.DOWN and left > 0:
                return await self._long_poll(task_id, left, metadata)
        return await self._result_now(task_id, metadata)

    async def _result_now(self, task_id: str, metadata: Metadata | None) -> common_pb2.TaskState:
        self.result_calls += 1
        response = await self._stub.GetResult(
            gateway_pb2.GetResultRequest(task_id=task_id),
            timeout=self._timeout,
            metadata=metadata,
        )
        return response.task

    async def _long_poll(
        self, task_id: str, wait: float, metadata: Metadata | None
    ) -> common_pb2.TaskState:
        """GetResult with ``wait``, given that much extra time, ended by ``stop_waiting``."""
        if self._stopping.is_set():
            return await self._result_now(task_id, metadata)
        request = gateway_pb2.GetResultRequest(task_id=task_id)
        request.wait.CopyFrom(duration(wait))
        self.result_calls += 1
        poll = asyncio.ensure_future(
            self._stub.GetResult(request, timeout=self._timeout + wait, metadata=metadata)
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({poll, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not poll.done():
                poll.cancel()  # the shim is stopping: ask once more, without waiting
        if poll in done:
            return poll.result().task
        return await self._result_now(task_id, metadata)

    async def list_workers(self, *, key: str | None = None) -> gateway_pb2.ListWorkersResponse:
        """ListWorkers."""
        request = gateway_pb2.ListWorkersRequest()
        return await self._stub.ListWorkers(
            request, timeout=self._timeout, metadata=metadata_for(key)
        )

    async def list_tasks_call(
        self, request: gateway_pb2.ListTasksRequest, *, key: str | None = None
    ) -> gateway_pb2.ListTasksResponse:
        """One ListTasks call, as it is (the dashboard's)."""
        return await self._stub.ListTasks(
            request, timeout=self._timeout, metadata=metadata_for(key)
        )

    async def list_functions_call(
        self, request: gateway_pb2.ListFunctionsRequest, *, key: str | None = None
    ) -> gateway_pb2.ListFunctionsResponse:
        """One ListFunctions call, as it is (the dashboard's)."""
        return await self._stub.ListFunctions(
            request, timeout=self._timeout, metadata=metadata_for(key)
        )

    async def list_tasks(
        self, request: gateway_pb2.ListTasksRequest, *, key: str | None = None
    ) -> gateway_pb2.ListTasksResponse:
        """ListTasks."""
        return await self._stub.ListTasks(
            request, timeout=self._timeout, metadata=metadata_for(key)
        )

    async def list_functions(
        self, request: gateway_pb2.ListFunctionsRequest, *, key: str | None = None
    ) -> gateway_pb2.ListFunctionsResponse:
        """ListFunctions."""
        return await self._stub.ListFunctions(
            request, timeout=self._timeout, metadata=metadata_for(key)
        )

    async def delete_function(
        self, function_id: str, *, key: str | None = None
    ) -> gateway_pb2.DeleteFunctionResponse:
        """DeleteFunction."""
        request = gateway_pb2.DeleteFunctionRequest(function_id=function_id)
        return await self._stub.DeleteFunction(
            request, timeout=self._timeout, metadata=metadata_for(key)
        )

    async def health(self) -> str:
        """The gateway's overall gRPC health status name, e.g. ``"SERVING"``."""
        response = await self._health.Check(
            health_pb2.HealthCheckRequest(service=""), timeout=self._timeout
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


class _KeyedSender:
    """The coalescer's two gateway calls, presenting one caller's key (and noting when the
    gateway last took it)."""

    def __init__(
        self, client: GatewayClient, metadata: Metadata | None, caller: Callable[[], Caller]
    ) -> None:
        self._client = client
        self._metadata = metadata
        self._caller = caller

    async def execute_function_call(
        self, request: gateway_pb2.ExecuteFunctionRequest
    ) -> gateway_pb2.ExecuteFunctionResponse:
        reply = await self._client.execute_function_call(request, self._metadata)
        self._caller().verified = time.monotonic()
        return reply

    async def execute_batch_call(
        self, request: gateway_pb2.ExecuteBatchRequest
    ) -> gateway_pb2.ExecuteBatchResponse:
        reply = await self._client.execute_batch_call(request, self._metadata)
        self._caller().verified = time.monotonic()
        return reply
