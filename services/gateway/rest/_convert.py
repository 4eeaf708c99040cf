"""Pure conversions between gRPC messages and REST bodies."""

from __future__ import annotations

import math

from faas.v1 import common_pb2, gateway_pb2
from google.protobuf import duration_pb2

from services.gateway.rest._codec import encode_result
from services.gateway.rest._models import (
    ResultResponse,
    StatusResponse,
    TaskErrorBody,
    WorkerBody,
    WorkersResponse,
)

__all__ = [
    "TERMINAL_STATUSES",
    "cause_name",
    "duration",
    "result_body",
    "status_body",
    "status_name",
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
    return StatusResponse(task_id=response.task_id, status=status_name(response.status))


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
            )
            for w in response.workers
        ],
    )
