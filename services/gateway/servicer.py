"""faas.v1.GatewayService: validates requests, stores them in Redis, then tells the dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import grpc
import redis.exceptions
from faas.v1 import (
    common_pb2,
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
)

from services.common.batcher import Batcher
from services.common.enrollment import DEFAULT_TENANT
from services.common.errors import (
    AlreadyExists,
    FaaSError,
    InvalidArgument,
    NotFound,
    StoreUnavailable,
    Unavailable,
    to_status,
)
from services.common.logs import task_id_var
from services.common.store import (
    TERMINAL_STATUSES,
    CreatedTask,
    FunctionRecord,
    NewTask,
    TaskStore,
)
from services.common.timeutil import ms_timestamp, to_duration

from .auth import Authenticator
from .convert import (
    duration_arg,
    merged_placement,
    output_truncated,
    placement_arg,
    status_value,
    task_state,
)
from .dispatcher_link import DispatcherLink
from .limits import (
    MAX_BATCH_REQUEST_ID_CHARS,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
)
from .listings import Listings
from .metrics import GatewayMetrics
from .payload import PayloadChecker
from .quotas import SubmitRate, open_tasks_exceeded
from .settings import GatewaySettings
from .waiters import TaskWaiters
from .waiting import WaitReasons
from .waiting import apply as apply_wait
from .watch import TaskWatch

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

# Functions whose placement and runtime the gateway keeps at hand.
_MAX_CACHED_FUNCTIONS = 4096


@contextlib.asynccontextmanager
async def _status_boundary(context: Context) -> AsyncIterator[None]:
    """Maps our errors and Redis outages to gRPC statuses at one boundary."""
    try:
        yield
    except FaaSError as exc:
        await context.abort_with_status(to_status(exc))
    except redis.exceptions.RedisError as exc:
        log.warning("redis unavailable: %s", exc)
        await context.abort_with_status(
            to_status(
                StoreUnavailable("the task store (Redis) is unavailable", "STORE_UNAVAILABLE")
            )
        )
    except grpc.aio.AbortError:
        raise
    except Exception:
        log.exception("unexpected error")  # the traceback stays in the log, off the wire
        await context.abort(grpc.StatusCode.INTERNAL, "internal error in the gateway")


_TERMINAL = frozenset({common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED})

TaskState = common_pb2.TaskState


def _is_terminal(state: TaskState) -> bool:
    return state.status in _TERMINAL


def _changed_from(state: TaskState) -> Callable[[TaskState], bool]:
    """Whether a later state is news to a watcher of ``state``: another status, or another
    reason to wait (a worker joined, none matches, the one running it went silent)."""
    seen = (state.status, state.wait_reason)
    return lambda later: (later.status, later.wait_reason) != seen


def _task_not_found(task_id: str) -> NotFound:
    return NotFound(f"task {task_id!r} not found", "TASK_NOT_FOUND", task_id=task_id)


def _function_not_found(function_id: str) -> NotFound:
    return NotFound(
        f"function {function_id!r} not found", "FUNCTION_NOT_FOUND", function_id=function_id
    )


def _require_id(value: str, what: str) -> None:
    if not value or len(value) > MAX_ID_CHARS:
        raise InvalidArgument(
            f"{what} is required (at most {MAX_ID_CHARS} characters)", "INVALID_ID"
        )


def _timeout(request: Any) -> float | None:
    return duration_arg(request.timeout, request.HasField("timeout"), "timeout")


def function_info(record: FunctionRecord) -> common_pb2.FunctionInfo:
    """What GetFunction answers for a stored function."""
    info = common_pb2.FunctionInfo(
        function_id=record.function_id,
        name=record.name,
        size_bytes=record.size_bytes,
        runtime=record.runtime,
        by_reference=record.by_reference,
        module=record.module,
        qualname=record.qualname,
        placement=record.placement,
        counts=common_pb2.FunctionCounts(
            submitted=record.submitted, completed=record.completed, failed=record.failed
        ),
    )
    if record.timeout is not None:
        info.timeout.CopyFrom(to_duration(record.timeout))
    created = ms_timestamp(record.created_ms)
    if created is not None:
        info.created_time.CopyFrom(created)
    return info


def _refusal(created: Sequence[CreatedTask | None]) -> str | None:
    """Why CREATE_TASKS stored none of a request's tasks: "function" (no such function of the
    caller's), "quota" (over the open tasks limit), or None when it stored them."""
    if any(c is None for c in created):
        return "function"
    if any(c is not None and c.over_quota for c in created):
        return "quota"
    return None


# A function's placement, runtime and timeout, as its tasks need them.
_Needs = tuple[common_pb2.Placement, common_pb2.Runtime, float | None]


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    """The public API; see protos/faas/v1/gateway.proto for each method's contract."""

    def __init__(
        self,
        settings: GatewaySettings,
        store: TaskStore,
        link: DispatcherLink,
        waiters: TaskWaiters,
        dispatcher_channel: grpc.aio.Channel,
        checker: PayloadChecker,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._checker = checker
        self._max_batch_items = settings.max_batch_items
        self._store = store
        self._link = link
        self._waiters = waiters
        self._dispatcher = dispatcher_pb2_grpc.DispatcherServiceStub(dispatcher_channel)
        self._auth = Authenticator(settings.api_keys_file)
        self._auth.announce()
        self._rate = SubmitRate(settings.tenant_submit_rate, settings.tenant_submit_burst)
        self._max_open = settings.tenant_max_open_tasks
        self._creator: Batcher[NewTask, CreatedTask | None] = Batcher(self._create)
        # (tenant, function_id) -> its placement, runtime and timeout (a function never changes
        # once stored).
        self._needs: dict[tuple[str, str], _Needs] = {}
        self._default_timeout = settings.default_task_timeout_seconds or None
        self._closing = False
        self._listings = Listings(store)
        self._waiting = WaitReasons(store)

    def close(self) -> None:
        """Shutdown: long polls answer now with what they have; watches end as UNAVAILABLE."""
        self._closing = True
        self._waiters.notify_all()

    def _tenant(self, context: Context) -> str:
        """The caller's tenant (raises Unauthenticated without a valid API key)."""
        if self._auth.open:
            return DEFAULT_TENANT  # whatever the call's metadata says
        return self._auth.tenant(context.invocation_metadata())

    def _scope(self, tenant: str) -> str | None:
        """Whose records a caller of ``tenant`` reads: its own, or (an open gateway, where
        anyone is let in anyway) every record, as before tenants."""
        return None if self._auth.open else tenant

    async def _create(
        self, tasks: Sequence[NewTask], *, whole: bool = False
    ) -> list[CreatedTask | None]:
        """Stores tasks, counted against their tenants' open tasks limit when there is one."""
        return await self._store.create_tasks(tasks, max_open=self._max_open or None, whole=whole)

    async def RegisterFunction(
        self, request: gateway_pb2.RegisterFunctionRequest, context: Context
    ) -> gateway_pb2.RegisterFunctionResponse:
        async with _status_boundary(context):
            tenant = self._tenant(context)
            if len(request.name) > MAX_NAME_CHARS:
                raise InvalidArgument(
                    f"name is longer than {MAX_NAME_CHARS} characters", "INVALID_NAME"
                )
            timeout = _timeout(request)
            placement_arg(request.placement)
            found = await self._checker.check_function(request.payload)
            runtime = common_pb2.Runtime()
            runtime.CopyFrom(request.runtime)
            runtime.pickle_protocol = found.protocol  # read from the stream, not taken on trust
            function_id = str(uuid.uuid4())
            await self._store.register_function(
                function_id,
                request.name,
                request.payload,
                timeout,
                by_reference=found.by_reference,
                module=found.module,
                qualname=found.qualname,
                runtime=runtime,
                placement=request.placement,
                tenant=tenant,
            )
            if self._metrics is not None:
                self._metrics.registered.inc()
            return gateway_pb2.RegisterFunctionResponse(function_id=function_id)

    async def GetFunction(
        self, request: gateway_pb2.GetFunctionRequest, context: Context
    ) -> gateway_pb2.GetFunctionResponse:
        async with _status_boundary(context):
            tenant = self._tenant(context)
            _require_id(request.function_id, "function_id")
            record = await self._store.get_function(request.function_id, self._scope(tenant))
            if record is None:
                raise _function_not_found(request.function_id)
            return gateway_pb2.GetFunctionResponse(function=function_info(record))

    # Listings (see listings.py): the caller's tenant's only; an open gateway's is "default".

    async def ListTasks(
        self, request: gateway_pb2.ListTasksRequest, context: Context
    ) -> gateway_pb2.ListTasksResponse:
        async with _status_boundary(context):
            tenant = self._tenant(context)
            return await self._listings.list_tasks(request, tenant, self._scope(tenant))

    async def ListFunctions(
        self, request: gateway_pb2.ListFunctionsRequest, context: Context
    ) -> gateway_pb2.ListFunctionsResponse:
        async with _status_boundary(context):
            tenant = self._tenant(context)
            records, token = await self._listings.functions_page(request, tenant)
            return gateway_pb2.ListFunctionsResponse(
                functions=[function_info(record) for record in records], next_page_token=token
            )

    async def DeleteFunction(
        self, request: gateway_pb2.DeleteFunctionRequest, context: Context
    ) -> gateway_pb2.DeleteFunctionResponse:
        async with _status_boundary(context):
            tenant = self._tenant(context)
            response = await self._listings.delete_function(request, self._scope(tenant))
            self._needs.pop((tenant, request.function_id), None)
            return response

    async def GetTaskOutput(
        self, request: gateway_pb2.GetTaskOutputRequest, context: Context
    ) -> gateway_pb2.GetTaskOutputResponse:
        async with _status_boundary(context):
            task_id_var.set(request.task_id)  # on its log lines
            tenant = self._tenant(context)
            _require_id(request.task_id, "task_id")
            output = await self._store.get_output(request.task_id, self._scope(tenant))
            if output is None:
                raise _task_not_found(request.task_id)
            return gateway_pb2.GetTaskOutputResponse(
                task_id=request.task_id, output=output, truncated=output_truncated(output)
            )

    async def ExecuteFunction(
        self, request: gateway_pb2.ExecuteFunctionRequest, context: Context
    ) -> gateway_pb2.ExecuteFunctionResponse:
        async with _status_boundary(context):
            tenant = self._tenant(context)
            _require_id(request.function_id, "function_id")
            if len(request.request_id) > MAX_ID_CHARS:
                raise InvalidArgument(
                    f"request_id is longer than {MAX_ID_CHARS} characters", "INVALID_ID"
                )
            timeout = _timeout(request)
            placement_arg(request.placement)
            self._rate.admit(tenant, 1)
            await self._checker.check_args([request.payload])
            placement, runtime, function_timeout = await self._task_needs(
                tenant, request.function_id, request.placement
            )
            timeout = self._task_timeout(timeout, function_timeout)
            task = NewTask(
                task_id=str(uuid.uuid4()),
                function_id=request.function_id,
                payload=request.payload,
                timeout=timeout,
                request_id=request.request_id,
                placement=placement,
                runtime=runtime,
                tenant=tenant,
            )
            created = await self._creator.submit(task)
            if created is None:
                raise _function_not_found(request.function_id)
            if created.over_quota:
                raise open_tasks_exceeded(tenant, self._max_open)
            if created.conflict:
                raise AlreadyExists(
                    f"request_id {request.request_id!r} was used for a task of another function",
                    "REQUEST_ID_REUSED",
                    task_id=created.task_id,
                )
            if created.created:
                self._hand_over([task], [created])
            return gateway_pb2.ExecuteFunctionResponse(task_id=created.task_id)

    async def ExecuteBatch(
        self, request: gateway_pb2.ExecuteBatchRequest, context: Context
    ) -> gateway_pb2.ExecuteBatchResponse:
        async with _status_boundary(context):
            tenant = self._tenant(context)
            _require_id(request.function_id, "function_id")
            if not request.payloads:
                raise InvalidArgument("payloads is empty", "EMPTY_BATCH")
            if len(request.payloads) > self._max_batch_items:
                raise InvalidArgument(
                    f"payloads has {len(request.payloads)} items, over the limit of "
                    f"{self._max_batch_items}",
                    "BATCH_TOO_LARGE",
                )
            if len(request.request_id) > MAX_BATCH_REQUEST_ID_CHARS:
                raise InvalidArgument(
                    f"request_id is longer than {MAX_BATCH_REQUEST_ID_CHARS} characters",
                    "INVALID_ID",
                )
            timeout = _timeout(request)
            placement_arg(request.placement)
            self._rate.admit(tenant, len(request.payloads))  # the batch is refused whole
            await self._checker.check_args(request.payloads)
            placement, runtime, function_timeout = await self._task_needs(
                tenant, request.function_id, request.placement
            )
            timeout = self._task_timeout(timeout, function_timeout)
            rid = request.request_id
            tasks = [
                NewTask(
                    str(uuid.uuid4()),
                    request.function_id,
                    item,
                    timeout,
                    request_id=f"{rid}#{index}" if rid else "",
                    placement=placement,
                    runtime=runtime,
                    tenant=tenant,
                )
                for index, item in enumerate(request.payloads)
            ]
            created = await self._create(tasks, whole=True)
            refusal = _refusal(created)  # the script stored nothing of the batch
            if refusal == "function":
                raise _function_not_found(request.function_id)
            if refusal == "quota":
                raise open_tasks_exceeded(tenant, self._max_open)
            done = [c for c in created if c is not None]
            if any(c.conflict for c in done):
                raise AlreadyExists(
                    f"request_id {rid!r} was used for tasks of another function",
                    "REQUEST_ID_REUSED",
                )
            self._hand_over(tasks, created)
            return gateway_pb2.ExecuteBatchResponse(task_ids=[c.task_id for c in done])

    async def _task_needs(
        self, tenant: str, function_id: str, extra: common_pb2.Placement
    ) -> tuple[bytes, bytes, float | None]:
        """A task's merged placement and its function's runtime, serialized for the store, and
        its function's timeout. Another tenant's function is looked up as an unknown one is."""
        needs = self._needs.get((tenant, function_id))
        if needs is None:
            record = await self._store.get_function(function_id, self._scope(tenant))
            if record is None:  # the create script answers NOT_FOUND
                return b"", b"", None
            needs = record.placement, record.runtime, record.timeout
            if len(self._needs) >= _MAX_CACHED_FUNCTIONS:
                del self._needs[next(iter(self._needs))]  # the oldest entry
            self._needs[tenant, function_id] = needs
        function_placement, runtime, function_timeout = needs
        placement = merged_placement(function_placement, extra)
        return placement.SerializeToString(), runtime.SerializeToString(), function_timeout

    def _task_timeout(
        self, requested: float | None, function_timeout: float | None
    ) -> float | None:
        """The request's timeout, else its function's, else the platform's default."""
        for timeout in (requested, function_timeout):
            if timeout is not None and timeout > 0:
                return timeout
        return self._default_timeout

    def _hand_over(self, tasks: Sequence[NewTask], created: Sequence[CreatedTask | None]) -> None:
        if self._metrics is not None:
            self._metrics.submitted.inc(sum(1 for c in created if c is not None and c.created))
        for task, done in zip(tasks, created, strict=True):
            if done is not None and done.created:
                spec = dispatcher_pb2.TaskSpec(
                    task_id=task.task_id,
                    function_id=task.function_id,
                    payload=task.payload,
                    timeout=to_duration(done.timeout),
                )
                if task.placement:
                    spec.placement.ParseFromString(task.placement)
                if task.runtime:
                    spec.runtime.ParseFromString(task.runtime)
                self._link.send(spec)

    async def GetStatus(
        self, request: gateway_pb2.GetStatusRequest, context: Context
    ) -> gateway_pb2.GetStatusResponse:
        async with _status_boundary(context):
            task_id_var.set(request.task_id)  # on its log lines
            tenant = self._tenant(context)
            _require_id(request.task_id, "task_id")
            found = await self._store.get_status_reason(request.task_id, self._scope(tenant))
            if found is None:
                raise _task_not_found(request.task_id)
            status, reason = found
            reply = gateway_pb2.GetStatusResponse(
                task_id=request.task_id, status=status_value(status), pending_reason=reason
            )
            if status not in TERMINAL_STATUSES:  # why it waits needs the rest of its record
                record = await self._store.get_task(request.task_id, self._scope(tenant))
                if record is not None:
                    apply_wait(await self._waiting.explain(record), reply)
            return reply

    async def GetResult(
        self, request: gateway_pb2.GetResultRequest, context: Context
    ) -> gateway_pb2.GetResultResponse:
        async with _status_boundary(context):
            task_id_var.set(request.task_id)  # on its log lines
            tenant = self._tenant(context)
            _require_id(request.task_id, "task_id")
            wait = duration_arg(request.wait, request.HasField("wait"), "wait") or 0.0
            wait = min(wait, self._settings.max_wait_seconds)
            state = await self._await_state(
                tenant, request.task_id, _is_terminal, time.monotonic() + wait, terminal_only=True
            )
            return gateway_pb2.GetResultResponse(task=state)

    async def WatchTask(
        self, request: gateway_pb2.WatchTaskRequest, context: Context
    ) -> AsyncIterator[gateway_pb2.WatchTaskResponse]:
        async with _status_boundary(context):
            task_id_var.set(request.task_id)  # on its log lines
            tenant = self._tenant(context)
            _require_id(request.task_id, "task_id")
            state = await self._read(tenant, request.task_id)
            yield gateway_pb2.WatchTaskResponse(task=state)
            while not _is_terminal(state):
                state = await self._await_state(
                    tenant, request.task_id, _changed_from(state), None, terminal_only=False
                )
                self._tenant(context)  # a key revoked since the stream opened reads no more
                yield gateway_pb2.WatchTaskResponse(task=state)

    async def WatchTasks(
        self,
        request_iterator: AsyncIterator[gateway_pb2.WatchTasksRequest]
        | Iterator[gateway_pb2.WatchTasksRequest],
        context: Context,
    ) -> AsyncIterator[gateway_pb2.WatchTasksResponse]:
        watch: TaskWatch | None = None
        reader: asyncio.Task[None] | None = None
        try:
            async with _status_boundary(context):
                tenant = self._tenant(context)
                watch = TaskWatch(
                    self._store,
                    self._waiters,
                    self._recheck_interval,
                    lambda: self._closing,
                    tenant=self._scope(tenant),
                    annotate=self._waiting.annotate,
                )
                reader = asyncio.create_task(_read_watch_requests(request_iterator, watch))
                async for response in watch.responses():
                    self._tenant(context)  # a key revoked since the stream opened reads no more
                    yield response
        finally:
            if reader is not None:
                reader.cancel()
            if watch is not None:
                watch.close()

    async def _read(self, tenant: str, task_id: str) -> TaskState:
        """The task's state; NOT_FOUND for an unknown id and another tenant's alike."""
        scope = self._scope(tenant)
        if scope is None:
            record = await self._store.get_task(task_id)
        else:
            record = await self._store.get_task(task_id, scope)
        if record is None:
            raise _task_not_found(task_id)
        state = task_state(record)
        await self._waiting.annotate(record, state)
        return state

    def _recheck_interval(self) -> float:
        """How long a waiter trusts the dispatcher's events before it re-reads Redis."""
        return self._settings.recheck_seconds if self._link.connected else 0.5

    async def _await_state(
        self,
        tenant: str,
        task_id: str,
        done: Callable[[TaskState], bool],
        deadline: float | None,
        *,
        terminal_only: bool,
    ) -> TaskState:
        """The task's state once ``done(state)``, or at the deadline.

        Between reads it sleeps until the dispatcher reports an event for the task (only terminal
        ones with ``terminal_only``), re-reading every few seconds in case an event was missed.
        A terminal event carries the stored state: that answers with no read after it (the
        first read, always made, has checked that the task is the caller's).
        """
        carried: TaskState | None = None
        while True:
            future = self._waiters.register(task_id, terminal_only=terminal_only)
            try:
                # Read after registering: no lost wake-up.
                current = carried if carried is not None else await self._read(tenant, task_id)
                carried = None
                if done(current):
                    return current
                if self._closing:
                    if terminal_only:
                        return current  # a long poll may end before the task does
                    raise Unavailable("the gateway is shutting down", "GATEWAY_SHUTTING_DOWN")
                interval = self._recheck_interval()
                if deadline is not None:
                    interval = min(interval, deadline - time.monotonic())
                    if interval <= 0:
                        return current
                await asyncio.wait({future}, timeout=interval)
                if future.done():
                    carried = future.result()
            finally:
                self._waiters.discard(task_id, future)

    async def ListWorkers(
        self, request: gateway_pb2.ListWorkersRequest, context: Context
    ) -> gateway_pb2.ListWorkersResponse:
        async with _status_boundary(context):
            self._tenant(context)
        try:
            reply = await self._dispatcher.ListConnectedWorkers(
                dispatcher_pb2.ListConnectedWorkersRequest(),
                timeout=5.0,
                wait_for_ready=True,
                metadata=self._link.metadata,
            )
        except grpc.aio.AioRpcError as exc:
            await context.abort_with_status(
                to_status(
                    Unavailable(
                        f"the dispatcher is unavailable: {exc.details()}", "DISPATCHER_UNAVAILABLE"
                    )
                )
            )
            raise
        return gateway_pb2.ListWorkersResponse(
            workers=reply.workers, mode=reply.mode, queued=reply.queued
        )


async def _read_watch_requests(
    requests: AsyncIterator[gateway_pb2.WatchTasksRequest]
    | Iterator[gateway_pb2.WatchTasksRequest],
    watch: TaskWatch,
) -> None:
    """Adds each request's ids to ``watch``; a bad request (malformed, a bad id) ends it."""
    try:
        if isinstance(requests, AsyncIterator):
            async for request in requests:
                watch.add(request.task_ids)
        else:
            for request in requests:
                watch.add(request.task_ids)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # InvalidArgument, or the stream failing under us
        watch.end_requests(exc)
    else:
        watch.end_requests()
