"""Request and response bodies of the REST API (the fixed public contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from services.gateway.limits import (
    DEFAULT_MAX_BATCH_ITEMS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_BATCH_REQUEST_ID_CHARS,
    MAX_DURATION_SECONDS,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    base64_chars,
)

__all__ = [
    "ExecuteBatchBody",
    "ExecuteBatchResponse",
    "ExecuteFunctionBody",
    "ExecuteFunctionResponse",
    "FunctionCountsBody",
    "FunctionResponse",
    "HealthResponse",
    "PlacementBody",
    "RegisterFunctionBody",
    "RegisterFunctionResponse",
    "ResultResponse",
    "RuntimeBody",
    "StatusResponse",
    "TaskErrorBody",
    "TaskOutputResponse",
    "WaitingBody",
    "WorkerBody",
    "WorkersResponse",
]


def _unicode(text: str) -> str:
    """Refuses lone surrogates (JSON "\\ud800"), which no UTF-8 message can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it has a lone surrogate)") from None
    return text


def _stated(**constraints: Any) -> dict[str, Any]:
    """Constraints the gateway enforces (400, or 413 for a payload's size), for the schema's
    ``json_schema_extra``: the shim leaves them to the gateway, so their status codes stay."""
    return constraints


# Lone surrogates are a 422 here: the gateway could not even receive them.
Text = Annotated[str, AfterValidator(_unicode)]

Timeout = Annotated[
    float | None,
    Field(
        default=None,
        gt=0,
        le=MAX_DURATION_SECONDS,
        allow_inf_nan=False,
        description="Time limit in seconds; unset means the function's default (or none).",
    ),
]

Payload = Annotated[
    str,
    Field(
        description='Base64 of the dill pickle: codecs.encode(dill.dumps(obj), "base64"). '
        f"The pickle may be up to {DEFAULT_MAX_PAYLOAD_BYTES} bytes (the gateway's default "
        "limit; 413 over it), which is the maxLength below in that encoding.",
        json_schema_extra=_stated(minLength=1, maxLength=base64_chars(DEFAULT_MAX_PAYLOAD_BYTES)),
    ),
]

Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]

FunctionId = Annotated[Text, Field(json_schema_extra=_stated(minLength=1, maxLength=MAX_ID_CHARS))]


class RuntimeBody(BaseModel):
    """The interpreter and serializer a function was serialized with (faas.v1.Runtime)."""

    python_version: Text = Field(default="", description='"3.11.7": the client\'s Python.')
    dill_version: Text = Field(default="", description='The dill version, e.g. "0.4.1".')
    pickle_protocol: int = Field(
        default=0,
        ge=0,
        le=2**32 - 1,
        description="The pickle protocol; the gateway reads it from the payload itself.",
    )
    serializer: Text = Field(default="", description='"dill" or "cloudpickle"; "": unknown.')
    cloudpickle_version: Text = Field(default="", description="When serializer is cloudpickle.")


class PlacementBody(BaseModel):
    """What a function's tasks, or one execution's, need of a worker (faas.v1.Placement).

    Unknown keys are refused (422), so a misspelt "lables" never lets a task run anywhere."""

    model_config = ConfigDict(extra="forbid")

    labels: dict[Text, Text] = Field(
        default_factory=dict, description='Labels the worker must carry, e.g. {"gpu": "h200"}.'
    )
    resources: dict[Text, Amount] = Field(
        default_factory=dict, description='Resources the worker must offer, e.g. {"gpu": 1}.'
    )
    any_python: bool = Field(
        default=False, description="Run on any Python version, not only the function's minor."
    )
    memory_limit_mb: int = Field(
        default=0,
        ge=0,
        le=1 << 32,
        description="The most address space (MiB) a task may use, under the worker's maximum "
        "(0: that maximum); over it the task FAILS MEMORY_LIMIT.",
    )
    cpu_limit_seconds: float = Field(
        default=0,
        ge=0,
        le=1e9,
        allow_inf_nan=False,
        description="The most CPU time (s) a task may use, under the worker's maximum (0: that "
        "maximum); over it the task FAILS CPU_LIMIT.",
    )


class RegisterFunctionBody(BaseModel):
    """Body of ``POST /register_function``."""

    name: Text = Field(
        description="A human readable name; need not be unique.",
        json_schema_extra=_stated(maxLength=MAX_NAME_CHARS),
    )
    payload: Payload
    timeout: Timeout = None
    runtime: RuntimeBody | None = Field(
        default=None, description="The Python and dill versions the payload was made with."
    )
    placement: PlacementBody | None = Field(
        default=None, description="What every task of the function needs of a worker."
    )


class RegisterFunctionResponse(BaseModel):
    """Answer of ``POST /register_function``."""

    function_id: str


_EXECUTION_PLACEMENT = (
    "What this execution needs of a worker, added to the function's placement (its labels "
    "and amounts over the function's; any_python if either says so)."
)


class ExecuteFunctionBody(BaseModel):
    """Body of ``POST /execute_function``; the payload pickles ``((args), {kwargs})``."""

    function_id: FunctionId
    payload: Payload
    timeout: Timeout = None
    placement: PlacementBody | None = Field(default=None, description=_EXECUTION_PLACEMENT)
    request_id: Text | None = Field(
        default=None,
        description="Idempotency key: a retry with the same key returns the same task_id.",
        json_schema_extra=_stated(maxLength=MAX_ID_CHARS),
    )


class ExecuteFunctionResponse(BaseModel):
    """Answer of ``POST /execute_function``."""

    task_id: str


class ExecuteBatchBody(BaseModel):
    """Body of ``POST /execute_batch``: one payload per task, all stored or none."""

    function_id: FunctionId
    payloads: list[Payload] = Field(
        description="One payload per task; the whole request body is bounded too (413).",
        json_schema_extra=_stated(minItems=1, maxItems=DEFAULT_MAX_BATCH_ITEMS),
    )
    timeout: Timeout = None
    placement: PlacementBody | None = Field(default=None, description=_EXECUTION_PLACEMENT)
    request_id: Text | None = Field(
        default=None,
        max_length=MAX_BATCH_REQUEST_ID_CHARS,
        description="Idempotency key: a retry with the same key returns the same task ids.",
    )


class ExecuteBatchResponse(BaseModel):
    """Answer of ``POST /execute_batch``: one task id per payload, in order."""

    task_ids: list[str]


class FunctionCountsBody(BaseModel):
    """How many tasks of a function were submitted, and how many ended so."""

    submitted: int = 0
    completed: int = 0
    failed: int = 0


class FunctionResponse(BaseModel):
    """Answer of ``GET /functions/{function_id}``: what the gateway recorded (not the payload)."""

    function_id: str
    name: str
    size_bytes: int = Field(description="Size of the serialized function in bytes.")
    timeout: float | None = Field(description="Default time limit in seconds; null: none.")
    created_time: str | None = Field(description="When it was registered (RFC 3339, UTC).")
    runtime: RuntimeBody
    by_reference: bool = Field(
        description="True when the pickle holds only a reference (module and qualname): it "
        "runs only on workers that can import the module (their --code-path)."
    )
    module: str = Field(description="The module the reference names, when by_reference.")
    qualname: str = Field(description="The qualified name it names, when by_reference.")
    placement: PlacementBody
    counts: FunctionCountsBody = Field(
        default_factory=FunctionCountsBody,
        description="Its tasks so far: submitted, and ended completed or failed.",
    )


_PENDING = (
    "Present only while a QUEUED task waits for more than a free worker: why (e.g. no "
    "connected worker has label gpu=h200). Such a task FAILS NO_COMPATIBLE_WORKER after a while."
)


_WAITING = "Present while the task has not ended: why it is where it is, and since when."


class WaitingBody(BaseModel):
    """Why a task that has not ended is where it is, and since when."""

    reason: str = Field(
        description="QUEUED: NO_WORKERS, WORKERS_BUSY, NO_MATCHING_WORKER or DISPATCHER_SILENT; "
        "RUNNING: RUNNING or WORKER_SILENT (its worker's heartbeats are late)."
    )
    since: datetime | None = Field(
        description="QUEUED: when it was queued (or requeued); RUNNING: when it started."
    )
    message: str = Field(description='For people, e.g. "every worker is busy (4 of 4 processes)".')
    worker_id: str | None = Field(description="RUNNING: the worker it runs on.")
    heartbeat_age_seconds: float | None = Field(
        description="RUNNING: how long ago its worker last sent a heartbeat (null: not connected)."
    )


class _PendingReason(BaseModel):
    """A task body whose ``pending_reason`` is left out when empty, and ``waiting`` once the
    task has ended, so older clients see the bodies they always did."""

    # Unannotated on purpose: so pydantic keeps the model's own schema for OpenAPI.
    @model_serializer(mode="wrap")
    def _omit_empty_reason(  # type: ignore[no-untyped-def]
        self, handler: SerializerFunctionWrapHandler
    ):
        data = handler(self)
        if isinstance(data, dict) and not data.get("pending_reason"):
            data.pop("pending_reason", None)
        if isinstance(data, dict) and data.get("waiting") is None:
            data.pop("waiting", None)
        return data


class StatusResponse(_PendingReason):
    """Answer of ``GET /status/{task_id}``."""

    task_id: str
    status: str = Field(description="QUEUED, RUNNING, COMPLETED or FAILED.")
    pending_reason: str = Field(default="", description=_PENDING)
    waiting: WaitingBody | None = Field(default=None, description=_WAITING)


class TaskOutputResponse(BaseModel):
    """Answer of ``GET /logs/{task_id}``: what the task's function printed."""

    task_id: str
    output: str = Field(
        description="stdout and stderr as written, kept once the task ended (empty before)."
    )
    truncated: bool = Field(description="Whether it was cut at the worker's --max-output-bytes.")


class TaskErrorBody(BaseModel):
    """Why a task FAILED."""

    cause: str = Field(
        description="RAISED, TIMEOUT, PROCESS_DIED, WORKER_LOST, BAD_PAYLOAD, "
        "RESULT_NOT_SERIALIZABLE, RESULT_TOO_LARGE, CODE_NOT_IMPORTABLE, "
        "NO_COMPATIBLE_WORKER, MEMORY_LIMIT, CPU_LIMIT or UNSPECIFIED."
    )
    message: str
    traceback: str


class ResultResponse(_PendingReason):
    """Answer of ``GET /result/{task_id}``."""

    task_id: str
    status: str = Field(description="QUEUED, RUNNING, COMPLETED or FAILED.")
    result: str | None = Field(
        description="Base64 of the dill pickle of the return value (COMPLETED) or of the "
        "exception (FAILED); null while the task has not ended."
    )
    error: TaskErrorBody | None = Field(description="Set when the task FAILED, else null.")
    pending_reason: str = Field(default="", description=_PENDING)
    waiting: WaitingBody | None = Field(default=None, description=_WAITING)


class WorkerBody(BaseModel):
    """Load and counters of one worker."""

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
    runtime: RuntimeBody = Field(
        default_factory=RuntimeBody, description="The Python and dill versions it runs."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels tasks may require.")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Resources tasks may require."
    )


class WorkersResponse(BaseModel):
    """Answer of ``GET /workers``."""

    mode: str = Field(description='"local", "pull" or "push".')
    queued: int = Field(description="Tasks waiting for a worker.")
    workers: list[WorkerBody]


class HealthResponse(BaseModel):
    """Answer of ``GET /healthz`` when the gateway is serving."""

    status: str
