"""Pure conversions between gRPC messages and REST bodies."""

from __future__ import annotations

import math
from datetime import UTC

from faas.v1 import common_pb2, gateway_pb2
from google.protobuf import duration_pb2

from services.gateway.rest._codec import encode_result
from services.gateway.rest._models import (
    ExecuteBatchBody,
    ExecuteFunctionBody,
    FunctionCountsBody,
    FunctionResponse,
    PlacementBody,
    RegisterFunctionBody,
    ResultResponse,
    RuntimeBody,
    StatusResponse,
    TaskErrorBody,
    WaitingBody,
    WorkerBody,
    WorkersResponse,
)

__all__ = [
    "TERMINAL_STATUSES",
    "cause_name",
    "duration",
    "function_body",
    "placement_message",
    "result_body",
    "runtime_message",
    "status_body",
    "status_name",
    "waiting_body",
    "workers_body",
]

_STATUS_PREFIX = "TASK_STATUS_"
_CAUSE_PREFIX = "FAILURE_CAUSE_"

TERMINAL_STATUSES = frozenset({common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED})


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix) :] if name.startswith(prefix) else name


def status_name(status: int) -> str:
    """``TASK_STATUS_QUEUED`` -> ``"QUEUED"``; an unknown value -> ``"UNSPECIFIED"``."""
    try:
        name = common_pb2.TaskStatus.Name(status)  # type: ignore[arg-type]
    except ValueError:
        return "UNSPECIFIED"
    return _strip(name, _STATUS_PREFIX)


def cause_name(cause: int) -> str:
    """``FAILURE_CAUSE_RAISED`` -> ``"RAISED"``; an unknown value -> ``"UNSPECIFIED"``."""
    try:
        name = common_pb2.FailureCause.Name(cause)  # type: ignore[arg-type]
    except ValueError:
        return "UNSPECIFIED"
    return _strip(name, _CAUSE_PREFIX)


def duration(seconds: float) -> duration_pb2.Duration:
    """A non-negative number of seconds as a protobuf Duration (nanosecond precision)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be finite and >= 0, got {seconds}")
    whole = math.floor(seconds)
    nanos = round((seconds - whole) * 1_000_000_000)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return duration_pb2.Duration(seconds=whole, nanos=nanos)


def status_body(response: gateway_pb2.GetStatusResponse) -> StatusResponse:
    """The ``/status`` body of a GetStatus answer."""
    return StatusResponse(
        task_id=response.task_id,
        status=status_name(response.status),
        pending_reason=response.pending_reason,
        waiting=waiting_body(response, response.worker_id),
    )


def waiting_body(
    message: gateway_pb2.GetStatusResponse | common_pb2.TaskState, worker_id: str
) -> WaitingBody | None:
    """The ``waiting`` body of a status or state; None when it says none (it has ended)."""
    if message.wait_reason == common_pb2.WAIT_REASON_UNSPECIFIED:
        return None
    try:
        reason = common_pb2.WaitReason.Name(message.wait_reason)
    except ValueError:
        reason = "WAIT_REASON_UNSPECIFIED"
    since = None
    if message.HasField("wait_since"):
        since = message.wait_since.ToDatetime(tzinfo=UTC)
    age = None
    if message.HasField("heartbeat_age"):
        age = message.heartbeat_age.ToTimedelta().total_seconds()
    running = message.status == common_pb2.TASK_STATUS_RUNNING
    return WaitingBody(
        reason=reason.removeprefix("WAIT_REASON_"),
        since=since,
        message=message.wait_message,
        worker_id=worker_id if running and worker_id else None,
        heartbeat_age_seconds=age,
    )


def result_body(task: common_pb2.TaskState) -> ResultResponse:
    """The ``/result`` body of a task snapshot.

    ``result`` is base64 of the result bytes once the task has ended and ``None`` before;
    ``error`` is set only when the task FAILED.
    """
    finished = task.status in TERMINAL_STATUSES
    error = None
    if task.status == common_pb2.TASK_STATUS_FAILED:
        error = TaskErrorBody(
            cause=cause_name(task.error.cause),
            message=task.error.message,
            traceback=task.error.traceback,
        )
    return ResultResponse(
        task_id=task.task_id,
        status=status_name(task.status),
        result=encode_result(task.result) if finished else None,
        error=error,
        pending_reason=task.pending_reason,
        waiting=waiting_body(task, task.worker_id),
    )


def _runtime_body(runtime: common_pb2.Runtime) -> RuntimeBody:
    return RuntimeBody(
        python_version=runtime.python_version,
        dill_version=runtime.dill_version,
        pickle_protocol=runtime.pickle_protocol,
        serializer=runtime.serializer,
        cloudpickle_version=runtime.cloudpickle_version,
    )


def workers_body(response: gateway_pb2.ListWorkersResponse) -> WorkersResponse:
    """The ``/workers`` body of a ListWorkers answer."""
    return WorkersResponse(
        mode=response.mode,
        queued=response.queued,
        workers=[
            WorkerBody(
                worker_id=w.worker_id,
                host=w.host,
                pid=w.pid,
                capacity=w.capacity,
                in_flight=w.in_flight,
                assigned=w.assigned,
                completed=w.completed,
                failed=w.failed,
                mode=w.mode,
                draining=w.draining,
                runtime=_runtime_body(w.runtime),
                labels=dict(w.labels),
                resources=dict(w.resources),
            )
            for w in response.workers
        ],
    )


def runtime_message(body: RegisterFunctionBody) -> common_pb2.Runtime | None:
    """The ``runtime`` of a ``/register_function`` body as a message (None when not given)."""
    if body.runtime is None:
        return None
    return common_pb2.Runtime(**body.runtime.model_dump())


def placement_message(
    body: RegisterFunctionBody | ExecuteFunctionBody | ExecuteBatchBody,
) -> common_pb2.Placement | None:
    """The ``placement`` of a ``/register_function``, ``/execute_function`` or
    ``/execute_batch`` body as a message (None when not given)."""
    if body.placement is None:
        return None
    return common_pb2.Placement(**body.placement.model_dump())


def function_body(info: common_pb2.FunctionInfo) -> FunctionResponse:
    """The ``/functions/{function_id}`` body of a GetFunction answer."""
    created = None
    if info.HasField("created_time"):
        created = info.created_time.ToDatetime(tzinfo=UTC).isoformat()
    timeout = None
    if info.HasField("timeout"):
        timeout = info.timeout.seconds + info.timeout.nanos / 1e9
    runtime = info.runtime
    return FunctionResponse(
        function_id=info.function_id,
        name=info.name,
        size_bytes=info.size_bytes,
        timeout=timeout,
        created_time=created,
        runtime=RuntimeBody(
            python_version=runtime.python_version,
            dill_version=runtime.dill_version,
            pickle_protocol=runtime.pickle_protocol,
            serializer=runtime.serializer,
            cloudpickle_version=runtime.cloudpickle_version,
        ),
        by_reference=info.by_reference,
        module=info.module,
        qualname=info.qualname,
        placement=PlacementBody(
            labels=dict(info.placement.labels),
            resources=dict(info.placement.resources),
            any_python=info.placement.any_python,
            memory_limit_mb=info.placement.memory_limit_mb,
            cpu_limit_seconds=info.placement.cpu_limit_seconds,
        ),
        counts=FunctionCountsBody(
            submitted=info.counts.submitted,
            completed=info.counts.completed,
            failed=info.counts.failed,
        ),
    )
