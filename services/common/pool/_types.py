"""Value objects exchanged with the process pool: a job in, an outcome out."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Job", "Outcome"]


@dataclass(frozen=True, slots=True)
class Job:
    """One attempt at running a user's function.

    ``function_payload`` is ``dill.dumps(fn)`` and ``args_payload`` is
    ``dill.dumps((args, kwargs))``, both raw bytes. The pool caches loaded functions by
    ``function_id`` in each child, so one id must always name the same payload.
    ``timeout`` is in seconds; ``None`` or a value ``<= 0`` means no limit.
    ``memory_limit_bytes`` and ``cpu_limit_seconds`` are the job's own limits; the pool applies
    at most its maxima, and 0 means the pool's maximum.
    """

    task_id: str
    attempt_id: str
    function_id: str
    function_payload: bytes
    args_payload: bytes
    timeout: float | None = None
    memory_limit_bytes: int = 0
    cpu_limit_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one job ended.

    ``status`` is ``TASK_STATUS_COMPLETED`` or ``TASK_STATUS_FAILED``. ``result`` holds the
    serialized return value, or a serialized exception when the job failed. ``cause`` is a
    ``FailureCause`` (``FAILURE_CAUSE_UNSPECIFIED`` on success), ``message`` a one-line summary
    and ``traceback`` the formatted traceback when there is one. ``output`` is what the job
    wrote to stdout and stderr, cut at the pool's ``max_output_bytes`` (with a marker).
    """

    task_id: str
    attempt_id: str
    status: int
    result: bytes
    cause: int
    message: str
    traceback: str
    output: str = ""
