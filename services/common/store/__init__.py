"""Redis state of MPCSFaaS: key layout, Lua scripts and the async store that uses them."""

from ._records import (
    STATUSES,
    TERMINAL_STATUSES,
    AttemptOutcome,
    AttemptStart,
    CreatedTask,
    LostAttempt,
    NewTask,
    QueuedFailure,
    QueuedTask,
    RunningAttempt,
    TaskRecord,
)
from ._store import FunctionRecord, TaskStore, connect
from .keys import Keys

__all__ = [
    "STATUSES",
    "TERMINAL_STATUSES",
    "AttemptOutcome",
    "AttemptStart",
    "CreatedTask",
    "FunctionRecord",
    "Keys",
    "LostAttempt",
    "NewTask",
    "QueuedFailure",
    "QueuedTask",
    "RunningAttempt",
    "TaskRecord",
    "TaskStore",
    "connect",
]
