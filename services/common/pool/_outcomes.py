"""Turn what happened to a job into an ``Outcome`` carrying the contract's status and cause."""

from __future__ import annotations

import pickle
import signal

from faas.v1 import common_pb2

from . import _protocol as proto
from ._types import Job, Outcome

_CAUSES: dict[str, int] = {
    proto.RAISED: common_pb2.FAILURE_CAUSE_RAISED,
    proto.BAD_FUNCTION: common_pb2.FAILURE_CAUSE_BAD_PAYLOAD,
    proto.BAD_ARGUMENTS: common_pb2.FAILURE_CAUSE_BAD_PAYLOAD,
    proto.UNSERIALIZABLE: common_pb2.FAILURE_CAUSE_RESULT_NOT_SERIALIZABLE,
    proto.TOO_LARGE: common_pb2.FAILURE_CAUSE_RESULT_TOO_LARGE,
    proto.NOT_IMPORTABLE: common_pb2.FAILURE_CAUSE_CODE_NOT_IMPORTABLE,
    proto.MEMORY_LIMIT: common_pb2.FAILURE_CAUSE_MEMORY_LIMIT,
}


def from_reply(job: Job, done: proto.Done, output: str) -> Outcome:
    """The outcome a child reported for ``job``, which wrote ``output``."""
    if done.kind == proto.OK:
        return Outcome(
            task_id=job.task_id,
            attempt_id=job.attempt_id,
            status=common_pb2.TASK_STATUS_COMPLETED,
            result=done.result,
            cause=common_pb2.FAILURE_CAUSE_UNSPECIFIED,
            message="",
            traceback="",
            output=output,
        )
    return _failed(job, _CAUSES[done.kind], done.result, done.message, done.traceback, output)


def timed_out(job: Job, output: str, *, loading_for: float | None = None) -> Outcome:
    """The outcome of a job whose child was killed for exceeding ``job.timeout``; given
    ``loading_for``, it was still loading its function after that many seconds."""
    message = f"task exceeded its time limit of {job.timeout:g} s"
    if loading_for is not None:
        message += (
            f": its function was still loading (unpickling it, importing its modules) after "
            f"{loading_for:.1f} s"
        )
    error = pickle.dumps(TimeoutError(message), protocol=proto.PICKLE_PROTOCOL)
    return _failed(job, common_pb2.FAILURE_CAUSE_TIMEOUT, error, message, "", output)


def over_cpu(job: Job, seconds: float, output: str, *, own: bool = False) -> Outcome:
    """The outcome of a job whose child SIGXCPU ended for using over ``seconds`` of CPU time
    (``own``: the job's own limit, else the pool's maximum)."""
    source = "its cpu_limit_seconds" if own else "--max-task-cpu-seconds, FAAS_MAX_TASK_CPU_SECONDS"
    message = f"task went over its CPU time limit of {seconds:g} s ({source})"
    error = pickle.dumps(TimeoutError(message), protocol=proto.PICKLE_PROTOCOL)
    return _failed(job, common_pb2.FAILURE_CAUSE_CPU_LIMIT, error, message, "", output)


def process_died(job: Job, exitcode: int | None, output: str) -> Outcome:
    """The outcome of a job whose child exited while running it."""
    message = f"worker process died with {_describe_exit(exitcode)} while running the task"
    error = pickle.dumps(ChildProcessError(message), protocol=proto.PICKLE_PROTOCOL)
    return _failed(job, common_pb2.FAILURE_CAUSE_PROCESS_DIED, error, message, "", output)


def _failed(
    job: Job, cause: int, result: bytes, message: str, traceback: str, output: str
) -> Outcome:
    return Outcome(
        task_id=job.task_id,
        attempt_id=job.attempt_id,
        status=common_pb2.TASK_STATUS_FAILED,
        result=result,
        cause=cause,
        message=message,
        traceback=traceback,
        output=output,
    )


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "an unknown exit code"
    if exitcode < 0:
        try:
            return f"exit code {exitcode} ({signal.Signals(-exitcode).name})"
        except ValueError:
            pass
    return f"exit code {exitcode}"
