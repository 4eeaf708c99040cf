"""Store records to protobuf messages, and request fields to checked values."""

from __future__ import annotations

import math
import re

from faas.v1 import common_pb2
from google.protobuf import duration_pb2

from services.common.errors import InvalidArgument
from services.common.store import task_state
from services.common.timeutil import duration_seconds

from .limits import MAX_DURATION_SECONDS

__all__ = [
    "cause_value",
    "duration_arg",
    "merged_placement",
    "output_truncated",
    "placement_arg",
    "status_value",
    "task_state",  # the store's: one conversion of a task record for every reader
]

_NANOS = 1_000_000_000
# Bounds of a task's own limits (far above any machine; they keep rlimit arithmetic in range).
_MAX_MEMORY_LIMIT_MB = 1 << 32
_MAX_CPU_LIMIT_SECONDS = 1e9
# A placement names at most this many labels and resources, each name and value this long.
_MAX_PLACEMENT_ITEMS = 64
_MAX_PLACEMENT_CHARS = 256


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


def placement_arg(placement: common_pb2.Placement, what: str = "placement") -> None:
    """Checks a request's placement: named labels and resources, finite amounts >= 0, bounded.

    Raises INVALID_ARGUMENT (reason INVALID_PLACEMENT) naming the offending entry.
    """
    items = len(placement.labels) + len(placement.resources)
    if items > _MAX_PLACEMENT_ITEMS:
        raise InvalidArgument(
            f"{what} has {items} labels and resources, over the limit of {_MAX_PLACEMENT_ITEMS}",
            "INVALID_PLACEMENT",
        )
    texts = [*placement.labels.items(), *((k, "") for k in placement.resources)]
    for key, value in texts:
        if not key or len(key) > _MAX_PLACEMENT_CHARS or len(value) > _MAX_PLACEMENT_CHARS:
            raise InvalidArgument(
                f"{what} has a label or resource {key!r}: names must be 1 to "
                f"{_MAX_PLACEMENT_CHARS} characters, values at most {_MAX_PLACEMENT_CHARS}",
                "INVALID_PLACEMENT",
            )
    for name, amount in placement.resources.items():
        if not math.isfinite(amount) or amount < 0:
            raise InvalidArgument(
                f"{what}.resources[{name!r}] is {amount}: a finite amount >= 0 is required",
                "INVALID_PLACEMENT",
            )
    if placement.memory_limit_mb > _MAX_MEMORY_LIMIT_MB:
        raise InvalidArgument(
            f"{what}.memory_limit_mb is {placement.memory_limit_mb}: at most "
            f"{_MAX_MEMORY_LIMIT_MB} (0: the worker's maximum)",
            "INVALID_PLACEMENT",
        )
    cpu = placement.cpu_limit_seconds
    if not math.isfinite(cpu) or not 0 <= cpu <= _MAX_CPU_LIMIT_SECONDS:
        raise InvalidArgument(
            f"{what}.cpu_limit_seconds is {cpu}: from 0 (the worker's maximum) to "
            f"{_MAX_CPU_LIMIT_SECONDS:g}",
            "INVALID_PLACEMENT",
        )


def merged_placement(
    function: common_pb2.Placement, execution: common_pb2.Placement
) -> common_pb2.Placement:
    """A task's placement: its function's, with the execution's labels, amounts and limits
    over it."""
    merged = common_pb2.Placement()
    merged.CopyFrom(function)
    merged.labels.update(execution.labels)
    merged.resources.update(execution.resources)
    merged.any_python = function.any_python or execution.any_python
    if execution.memory_limit_mb:
        merged.memory_limit_mb = execution.memory_limit_mb
    if execution.cpu_limit_seconds:
        merged.cpu_limit_seconds = execution.cpu_limit_seconds
    return merged


# The marker the worker's pool (or the dispatcher) ends a cut output with.
_TRUNCATED = re.compile(r"\n\[output truncated: [^\n]*\]\n\Z")


def output_truncated(output: str) -> bool:
    """Whether a task's kept output says it was cut (the marker at its end)."""
    return _TRUNCATED.search(output) is not None


def status_value(name: str) -> common_pb2.TaskStatus.ValueType:
    return common_pb2.TaskStatus.Value(f"TASK_STATUS_{name}")


def cause_value(name: str) -> common_pb2.FailureCause.ValueType:
    if not name:
        return common_pb2.FAILURE_CAUSE_UNSPECIFIED
    return common_pb2.FailureCause.Value(f"FAILURE_CAUSE_{name}")
