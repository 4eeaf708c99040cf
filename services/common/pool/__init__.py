"""Run users' dill-serialized functions in a pool of long-lived child processes.

``ProcessPool`` is driven from an asyncio event loop: ``submit`` a ``Job`` to a child (each
holds up to ``queue_depth`` jobs, runs them in order and sends their outcomes in chunks) and
receive its ``Outcome`` through a callback. Children cache loaded functions, are replaced when
they die or overrun a time limit, and never run on the loop.

``ProcessPool`` is imported lazily: every child imports this package on its way to
``_child``, and should not pay for asyncio and protobuf, which only the parent needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._imports import code_path_entries, normalized_code_path
from ._protocol import RunAs
from ._spawn import (
    ALLOWED_VARIABLES,
    RunAsError,
    checked_run_as,
    child_environment,
    resolve_run_as,
)
from ._types import Job, Outcome

if TYPE_CHECKING:
    from ._pool import ProcessPool

__all__ = [
    "ALLOWED_VARIABLES",
    "Job",
    "Outcome",
    "ProcessPool",
    "RunAs",
    "RunAsError",
    "checked_run_as",
    "child_environment",
    "code_path_entries",
    "normalized_code_path",
    "resolve_run_as",
]


def __getattr__(name: str) -> object:
    if name == "ProcessPool":
        from ._pool import ProcessPool

        return ProcessPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
