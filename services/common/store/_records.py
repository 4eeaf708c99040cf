"""Plain value objects that the store reads and writes."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.enrollment import DEFAULT_TENANT

TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED"})
STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "FAILED")


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task to store as QUEUED."""

    task_id: str
    function_id: str
    payload: bytes
    timeout: float | None = None
    request_id: str = ""
    # What the task needs of a worker and its function's runtime (serialized faas.v1.Placement
    # and faas.v1.Runtime; empty: nothing, any Python).
    placement: bytes = b""
    runtime: bytes = b""
    tenant: str = DEFAULT_TENANT  # whose task it is: its function must be the same tenant's


@dataclass(frozen=True, slots=True)
class CreatedTask:
    """What storing a :class:`NewTask` gave: its id (an earlier one for a repeated request_id)."""

    task_id: str
    timeout: float | None
    created: bool
    # The request_id was used before for a task of another function (task_id is that task).
    conflict: bool = False
    # Not stored: the tenant is at its limit of open tasks (task_id is "").
    over_quota: bool = False


@dataclass(frozen=True, slots=True)
class QueuedTask:
    """What the dispatcher needs to run a task."""

    task_id: str
    function_id: str
    payload: bytes
    timeout: float | None
    placement: bytes = b""
    runtime: bytes = b""
    pending_reason: str = ""


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A task as stored, without its argument payload."""

    task_id: str
    function_id: str
    status: str
    result: bytes
    cause: str
    message: str
    traceback: str
    attempts: int
    worker_id: str
    created_ms: int
    started_ms: int
    finished_ms: int
    # Why a QUEUED task waits, when not only for a free worker ("" otherwise).
    pending_reason: str = ""
    # Whose task it is (a record written before tenants: the default tenant's).
    tenant: str = DEFAULT_TENANT
    # The size of what its function printed, kept with it once it ended (0: nothing).
    output_bytes: int = 0
    # When it last went back to the queue after a lost attempt (0: never).
    requeued_ms: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class AttemptStart:
    task_id: str
    attempt_id: str
    worker_id: str


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    task_id: str
    attempt_id: str
    status: str
    result: bytes
    cause: str = ""
    message: str = ""
    traceback: str = ""
    # The attempt was assigned but Redis may not record it as started (a prefetched attempt
    # whose start was not written): the outcome is stored for a QUEUED task too.
    unstarted: bool = False
    worker_id: str = ""  # whose attempt: recorded when it was unstarted
    output: str = ""  # what the function printed (bounded by the worker)


@dataclass(frozen=True, slots=True)
class RunningAttempt:
    """The attempt a RUNNING task is under, and the worker it was started on."""

    attempt_id: str
    worker_id: str


@dataclass(frozen=True, slots=True)
class LostAttempt:
    task_id: str
    attempt_id: str = ""  # "" matches whatever attempt is RUNNING


@dataclass(frozen=True, slots=True)
class QueuedFailure:
    """A QUEUED task to fail before any attempt; ``token`` makes a repeated write report 1."""

    task_id: str
    token: str
    result: bytes
    cause: str
    message: str


class RequeueResult(enum.IntEnum):
    """What putting a lost attempt back did."""

    NOOP = 0  # the attempt was not current (or the task was not RUNNING): nothing changed
    REQUEUED = 1  # the task is QUEUED again
    FAILED = 2  # the task used all its attempts and is FAILED now


@dataclass(frozen=True, slots=True)
class Requeued:
    """The result of requeueing one lost attempt; ``record`` is the stored state when FAILED."""

    result: RequeueResult
    record: TaskRecord | None = None


@dataclass(frozen=True, slots=True)
class Presence:
    """The dispatcher's last report of itself (``faas:dispatcher``, ``faas:heartbeats``): when
    (ms, 0: never), its period, its workers' slots, and each connected worker's last heartbeat
    (ms). Gateways read it to say why a task waits."""

    updated_ms: int = 0
    interval_ms: int = 1000
    workers: int = 0
    slots: int = 0
    free: int = 0
    heartbeats: Mapping[str, int] = field(default_factory=dict)
