"""The wire's assignments and outcomes as the process pool's jobs and outcomes, and back.

The worker agent and the dispatcher's local mode both run assignments on a ProcessPool; this is
the one translation between the two, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Protocol

from faas.v1 import common_pb2, dispatcher_pb2

from services.common.pool import Job, Outcome

__all__ = ["job_of", "outcome_message"]


class Bodies(Protocol):
    """Where function bodies are looked up (a dict, or a FunctionCache)."""

    def get(self, function_id: str, default: bytes, /) -> bytes: ...


def job_of(assignment: dispatcher_pb2.Assignment, bodies: Bodies) -> Job:
    """The pool job for ``assignment``, with its function's body from ``bodies`` (b"" if none)."""
    timeout = assignment.timeout.seconds + assignment.timeout.nanos / 1e9
    return Job(
        task_id=assignment.task_id,
        attempt_id=assignment.attempt_id,
        function_id=assignment.function_id,
        function_payload=bodies.get(assignment.function_id, b""),
        args_payload=assignment.payload,
        timeout=timeout or None,
        memory_limit_bytes=assignment.memory_limit_mb * 1024 * 1024,
        cpu_limit_seconds=assignment.cpu_limit_seconds,
    )


def outcome_message(outcome: Outcome) -> dispatcher_pb2.TaskOutcome:
    """The TaskOutcome that reports a pool outcome."""
    return dispatcher_pb2.TaskOutcome(
        task_id=outcome.task_id,
        attempt_id=outcome.attempt_id,
        status=outcome.status,  # type: ignore[arg-type]
        result=outcome.result,
        error=common_pb2.TaskError(
            cause=outcome.cause,  # type: ignore[arg-type]
            message=outcome.message,
            traceback=outcome.traceback,
        ),
        output=outcome.output,
    )
