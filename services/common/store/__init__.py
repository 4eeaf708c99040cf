"""Redis state of MPCSFaaS: key layout, Lua scripts and the async store that uses them."""

from ._listing import Cursor, Page, TaskFilter
from ._records import (
    STATUSES,
    TERMINAL_STATUSES,
    AttemptOutcome,
    AttemptStart,
    CreatedTask,
    LostAttempt,
    NewTask,
    Presence,
    QueuedFailure,
    QueuedTask,
    Requeued,
    RequeueResult,
    RunningAttempt,
    TaskRecord,
)
from ._states import CAUSE_VALUES, STATUS_VALUES, task_state
from ._store import FunctionRecord, StoreFailed, TaskStore, connect
from .keys import Keys

__all__ = [
    "CAUSE_VALUES",
    "STATUSES",
    "STATUS_VALUES",
    "TERMINAL_STATUSES",
    "AttemptOutcome",
    "AttemptStart",
    "CreatedTask",
    "Cursor",
    "FunctionRecord",
    "Keys",
    "LostAttempt",
    "NewTask",
    "Page",
    "Presence",
    "QueuedFailure",
    "QueuedTask",
    "RequeueResult",
    "Requeued",
    "RunningAttempt",
    "StoreFailed",
    "TaskFilter",
    "TaskRecord",
    "TaskStore",
    "connect",
    "task_state",
]
