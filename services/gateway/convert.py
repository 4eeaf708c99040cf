"""Store records to protobuf messages, and request fields to checked values."""

from __future__ import annotations

from faas.v1 import common_pb2
from google.protobuf import duration_pb2

from services.common.errors import InvalidArgument
from services.common.store import TaskRecord
from services.common.timeutil import duration_seconds, ms_timestamp

from .limits import MAX_DURATION_SECONDS

_NANOS = 1_000_000_000


def duration_arg(value: duration_pb2.Duration, present: bool, what: str) -> float | None:
    """Seconds in a request's Duration field (None when absent or not positive).

    A Duration outside protobuf's range or not normalized (nanos of 1e9 or more, or of the
    other sign than seconds) is INVALID_ARGUMENT, as protobuf's own JSON mapping refuses it.
    """
    if not present:
        return None
    seconds, nanos = value.seconds, value.nanos
    if (
        abs(seconds) > MAX_DURATION_SECONDS
        or abs(nanos) >= _NANOS
        or (seconds > 0 and nanos < 0)
        or (seconds < 0 and nanos > 0)
    ):
        raise InvalidArgument(
            f"{what} is not a valid Duration (seconds={seconds}, nanos={nanos}): seconds must "
            f"be within ±{MAX_DURATION_SECONDS}, |nanos| below 1e9 and of the same sign",
            "INVALID_DURATION",
        )
    return duration_seconds(value, present)


def status_value(name: str) -> common_pb2.TaskStatus.ValueType:
    return common_pb2.TaskStatus.Value(f"TASK_STATUS_{name}")


def cause_value(name: str) -> common_pb2.FailureCause.ValueType:
    if not name:
        return common_pb2.FAILURE_CAUSE_UNSPECIFIED
    return common_pb2.FailureCause.Value(f"FAILURE_CAUSE_{name}")


def task_state(record: TaskRecord) -> common_pb2.TaskState:
    state = common_pb2.TaskState(
        task_id=record.task_id,
        function_id=record.function_id,
        status=status_value(record.status),
        attempts=record.attempts,
        worker_id=record.worker_id,
    )
    if record.terminal:
        state.result = record.result
    if record.status == "FAILED":
        state.error.CopyFrom(
            common_pb2.TaskError(
                cause=cause_value(record.cause), message=record.message, traceback=record.traceback
            )
        )
    for field, ms in (
        ("created_time", record.created_ms),
        ("started_time", record.started_ms),
        ("finished_time", record.finished_ms),
    ):
        stamp = ms_timestamp(ms)
        if stamp is not None:
            getattr(state, field).CopyFrom(stamp)
    return state
