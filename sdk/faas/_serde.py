"""The wire format of payloads: dill pickles of functions, ``(args, kwargs)`` and results.

Unpickling a result runs code from the pickle: only read results of a gateway you trust.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dill

from ._models import TaskInfo, TaskStatus
from .errors import FaaSError, TaskFailed

__all__ = ["dumps_call", "dumps_function", "outcome"]


def dumps_function(fn: Callable[..., Any]) -> bytes:
    """``fn`` pickled by value, with the globals it refers to, so workers need not import it."""
    if not callable(fn):
        raise TypeError(f"expected a callable, got {type(fn).__name__}")
    data: bytes = dill.dumps(fn, recurse=True)
    return data


def dumps_call(args: Sequence[Any], kwargs: Mapping[str, Any] | None = None) -> bytes:
    """The arguments payload: ``dill.dumps((tuple(args), dict(kwargs)))``."""
    data: bytes = dill.dumps((tuple(args), dict(kwargs or {})))
    return data


def outcome(info: TaskInfo) -> Any:
    """The value of an ended task, or raise what it failed with.

    A COMPLETED task gives its return value. A FAILED task whose function raised re-raises
    that exception (the remote traceback added as a note); any other failure raises
    ``TaskFailed`` whose ``__cause__`` is the recorded exception, when it can be read.
    """
    if info.status == TaskStatus.COMPLETED:
        try:
            return dill.loads(info.payload)
        except Exception as exc:
            raise FaaSError(
                f"the result of task {info.task_id} could not be deserialized: {exc}",
                reason="RESULT_NOT_DESERIALIZABLE",
            ) from exc
    if info.status != TaskStatus.FAILED:
        raise FaaSError(f"task {info.task_id} has not ended ({info.status})")
    recorded, readable = _recorded_exception(info.payload)
    if info.cause == "RAISED" and readable and recorded is not None:
        if info.traceback:
            recorded.add_note(f"\nRemote traceback (task {info.task_id}):\n{info.traceback}")
        raise recorded
    raise TaskFailed(info.task_id, info.cause, info.message, info.traceback) from recorded


def _recorded_exception(payload: bytes) -> tuple[BaseException | None, bool]:
    """The exception a FAILED task recorded and True; or the error of reading it and False."""
    if not payload:
        return None, False
    try:
        value = dill.loads(payload)
    except Exception as exc:
        return exc, False
    return (value, True) if isinstance(value, BaseException) else (None, False)
