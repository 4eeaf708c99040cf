"""Plain value objects for what the gateway reports: task snapshots and worker load."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from google.protobuf import timestamp_pb2

from faas.v1 import common_pb2, gateway_pb2

__all__ = [
    "FunctionCounts",
    "FunctionInfo",
    "FunctionPage",
    "PlacementInfo",
    "RuntimeInfo",
    "TaskInfo",
    "TaskOutput",
    "TaskPage",
    "TaskStatus",
    "WaitInfo",
    "WorkerInfo",
    "WorkersReport",
]


class TaskStatus(enum.StrEnum):
    """A task's lifecycle state: QUEUED -> RUNNING -> COMPLETED | FAILED."""

    UNSPECIFIED = "UNSPECIFIED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        """Whether the task has ended (COMPLETED or FAILED)."""
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED)

    @classmethod
    def from_proto(cls, value: int) -> TaskStatus:
        """``TASK_STATUS_RUNNING`` (the enum number) -> ``TaskStatus.RUNNING``."""
        return _STATUSES.get(value, TaskStatus.UNSPECIFIED)


_STATUSES: dict[int, TaskStatus] = {
    number: TaskStatus(name.removeprefix("TASK_STATUS_"))
    for name, number in common_pb2.TaskStatus.items()
}


def cause_name(value: int) -> str:
    """``FAILURE_CAUSE_TIMEOUT`` (the enum number) -> ``"TIMEOUT"``."""
    try:
        name = common_pb2.FailureCause.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return "UNSPECIFIED"
    return name.removeprefix("FAILURE_CAUSE_")


def _time(message: common_pb2.TaskState | common_pb2.FunctionInfo, name: str) -> datetime | None:
    if not message.HasField(name):  # type: ignore[arg-type]
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    return stamp.ToDatetime().astimezone()


@dataclass(frozen=True, slots=True)
class WaitInfo:
    """Why a task that has not ended is where it is: ``reason`` is NO_WORKERS, WORKERS_BUSY,
    NO_MATCHING_WORKER, DISPATCHER_SILENT (QUEUED), RUNNING or WORKER_SILENT (RUNNING on
    ``worker_id``, whose last heartbeat was ``heartbeat_age`` seconds ago)."""

    reason: str
    since: datetime | None = None
    message: str = ""
    worker_id: str = ""
    heartbeat_age: float | None = None

    @classmethod
    def from_proto(
        cls, state: common_pb2.TaskState | gateway_pb2.GetStatusResponse
    ) -> WaitInfo | None:
        """The wait of a task state or status answer; None when it says none (ended)."""
        if state.wait_reason == common_pb2.WAIT_REASON_UNSPECIFIED:
            return None
        try:
            name = common_pb2.WaitReason.Name(state.wait_reason)
        except ValueError:
            name = "WAIT_REASON_UNSPECIFIED"
        age = None
        if state.HasField("heartbeat_age"):
            age = state.heartbeat_age.ToTimedelta().total_seconds()
        since = None
        if state.HasField("wait_since"):
            since = state.wait_since.ToDatetime().astimezone()
        return cls(
            reason=name.removeprefix("WAIT_REASON_"),
            since=since,
            message=state.wait_message,
            worker_id=state.worker_id,
            heartbeat_age=age,
        )


@dataclass(frozen=True, slots=True)
class TaskOutput:
    """What a task's function printed (stdout and stderr), kept once it ended."""

    task_id: str
    output: str
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A snapshot of one task. ``payload`` is the dill pickle of the result (COMPLETED) or of
    the exception (FAILED), empty before the task ends; ``cause``, ``message`` and
    ``traceback`` are set when it FAILED."""

    task_id: str
    function_id: str
    status: TaskStatus
    attempts: int = 0
    worker_id: str = ""
    cause: str = ""
    message: str = ""
    traceback: str = ""
    created_time: datetime | None = None
    started_time: datetime | None = None
    finished_time: datetime | None = None
    payload: bytes = field(default=b"", repr=False)
    # Why it is where it is, while it has not ended (None once it has).
    waiting: WaitInfo | None = None
    # The size of what its function printed (FaaSClient.output reads it).
    output_bytes: int = 0

    @classmethod
    def from_proto(cls, state: common_pb2.TaskState) -> TaskInfo:
        failed = state.status == common_pb2.TASK_STATUS_FAILED
        return cls(
            task_id=state.task_id,
            function_id=state.function_id,
            status=TaskStatus.from_proto(state.status),
            attempts=state.attempts,
            worker_id=state.worker_id,
            cause=cause_name(state.error.cause) if failed else "",
            message=state.error.message if failed else "",
            traceback=state.error.traceback if failed else "",
            created_time=_time(state, "created_time"),
            started_time=_time(state, "started_time"),
            finished_time=_time(state, "finished_time"),
            payload=bytes(state.result),
            waiting=WaitInfo.from_proto(state),
            output_bytes=state.output_bytes,
        )


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """Load and counters of one worker connected to the dispatcher."""

    worker_id: str
    host: str
    pid: int
    capacity: int
    in_flight: int
    assigned: int
    completed: int
    failed: int
    mode: str
    draining: bool

    @property
    def load(self) -> float:
        """In-flight tasks per process (1.0 = every process busy)."""
        return self.in_flight / self.capacity if self.capacity else 0.0


@dataclass(frozen=True, slots=True)
class WorkersReport:
    """What ``ListWorkers`` returns: the dispatcher's mode, its queue and its workers."""

    mode: str
    queued: int
    workers: tuple[WorkerInfo, ...]

    @classmethod
    def from_proto(cls, reply: gateway_pb2.ListWorkersResponse) -> WorkersReport:
        return cls(
            mode=reply.mode,
            queued=reply.queued,
            workers=tuple(
                WorkerInfo(
                    worker_id=w.worker_id,
                    host=w.host,
                    pid=w.pid,
                    capacity=w.capacity,
                    in_flight=w.in_flight,
                    assigned=w.assigned,
                    completed=w.completed,
                    failed=w.failed,
                    mode=w.mode,
                    draining=w.draining,
                )
                for w in reply.workers
            ),
        )


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    """The interpreter and serializer a function was serialized with; empty when not given."""

    python_version: str = ""
    dill_version: str = ""
    pickle_protocol: int = 0
    serializer: str = ""
    cloudpickle_version: str = ""

    @classmethod
    def from_proto(cls, runtime: common_pb2.Runtime) -> RuntimeInfo:
        return cls(
            python_version=runtime.python_version,
            dill_version=runtime.dill_version,
            pickle_protocol=runtime.pickle_protocol,
            serializer=runtime.serializer,
            cloudpickle_version=runtime.cloudpickle_version,
        )


@dataclass(frozen=True, slots=True)
class PlacementInfo:
    """What a function's tasks need of a worker (labels, resources, any Python or not) and may
    use there (``memory_limit_mb``, ``cpu_limit_seconds``; 0: the worker's maxima)."""

    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    resources: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    any_python: bool = False
    memory_limit_mb: int = 0
    cpu_limit_seconds: float = 0.0

    @classmethod
    def from_proto(cls, placement: common_pb2.Placement) -> PlacementInfo:
        return cls(
            labels=MappingProxyType(dict(placement.labels)),
            resources=MappingProxyType(dict(placement.resources)),
            any_python=placement.any_python,
            memory_limit_mb=placement.memory_limit_mb,
            cpu_limit_seconds=placement.cpu_limit_seconds,
        )


@dataclass(frozen=True, slots=True)
class FunctionCounts:
    """How many tasks of a function were submitted, and how many ended COMPLETED or FAILED."""

    submitted: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """What the gateway recorded about a registered function (``FaaSClient.get_function``).

    ``by_reference`` is True when the pickle holds only ``module`` and ``qualname``: the
    function then runs only on workers that can import ``module`` (from their code path).
    ``timeout`` is the default time limit of its tasks in seconds (``None``: none).
    """

    function_id: str
    name: str
    size_bytes: int
    by_reference: bool
    module: str = ""
    qualname: str = ""
    timeout: float | None = None
    created_time: datetime | None = None
    runtime: RuntimeInfo = field(default_factory=RuntimeInfo)
    placement: PlacementInfo = field(default_factory=PlacementInfo)
    counts: FunctionCounts = field(default_factory=FunctionCounts)

    @classmethod
    def from_proto(cls, info: common_pb2.FunctionInfo) -> FunctionInfo:
        timeout = None
        if info.HasField("timeout"):
            timeout = info.timeout.ToNanoseconds() / 1e9
        return cls(
            function_id=info.function_id,
            name=info.name,
            size_bytes=info.size_bytes,
            by_reference=info.by_reference,
            module=info.module,
            qualname=info.qualname,
            timeout=timeout,
            created_time=_time(info, "created_time"),
            runtime=RuntimeInfo.from_proto(info.runtime),
            placement=PlacementInfo.from_proto(info.placement),
            counts=FunctionCounts(
                submitted=info.counts.submitted,
                completed=info.counts.completed,
                failed=info.counts.failed,
            ),
        )


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of ``FaaSClient.list_tasks``: newest first, without results (``payload`` is
    empty: ``FaaSClient.task`` reads one); ``next_page_token`` is "" on the last page."""

    tasks: tuple[TaskInfo, ...]
    next_page_token: str = ""


@dataclass(frozen=True, slots=True)
class FunctionPage:
    """One page of ``FaaSClient.list_functions``: newest first, with their counts."""

    functions: tuple[FunctionInfo, ...]
    next_page_token: str = ""
