"""Stored task records as ``faas.v1.TaskState`` messages, with enum look-ups by table."""

from __future__ import annotations

from faas.v1 import common_pb2

from services.common.timeutil import ms_timestamp

from ._records import TaskRecord

STATUS_VALUES: dict[str, common_pb2.TaskStatus.ValueType] = {
    name.removeprefix("TASK_STATUS_"): value
    for name, value in common_pb2.TaskStatus.items()
    if value != common_pb2.TASK_STATUS_UNSPECIFIED
}
CAUSE_VALUES: dict[str, common_pb2.FailureCause.ValueType] = {
    name.removeprefix("FAILURE_CAUSE_"): value
    for name, value in common_pb2.FailureCause.items()
    if value != common_pb2.FAILURE_CAUSE_UNSPECIFIED
}


def task_state(record: TaskRecord) -> common_pb2.TaskState:
    """The state clients see of ``record`` (its result only once terminal, its error if FAILED)."""
    state = common_pb2.TaskState(
        task_id=record.task_id,
        function_id=record.function_id,
        status=STATUS_VALUES.get(record.status, common_pb2.TASK_STATUS_UNSPECIFIED),
        attempts=record.attempts,
        worker_id=record.worker_id,
        pending_reason=record.pending_reason if record.status == "QUEUED" else "",
        output_bytes=record.output_bytes,
    )
    if record.terminal:
        state.result = record.result
    if record.status == "FAILED":
        error = state.error
        error.cause = CAUSE_VALUES.get(record.cause, common_pb2.FAILURE_CAUSE_UNSPECIFIED)
        error.message = record.message
        error.traceback = record.traceback
    for field, ms in (
        ("created_time", record.created_ms),
        ("started_time", record.started_ms),
        ("finished_time", record.finished_ms),
    ):
        stamp = ms_timestamp(ms)
        if stamp is not None:
            getattr(state, field).CopyFrom(stamp)
    return state
