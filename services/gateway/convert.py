"""Store records to protobuf messages."""

from __future__ import annotations

from faas.v1 import common_pb2

from services.common.store import TaskRecord
from services.common.timeutil import ms_timestamp


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
