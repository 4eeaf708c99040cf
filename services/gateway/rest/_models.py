"""Request and response bodies of the REST API (the fixed public contract)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

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
    "HealthResponse",
    "RegisterFunctionBody",
    "RegisterFunctionResponse",
    "ResultResponse",
    "StatusResponse",
    "TaskErrorBody",
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

FunctionId = Annotated[Text, Field(json_schema_extra=_stated(minLength=1, maxLength=MAX_ID_CHARS))]


class RegisterFunctionBody(BaseModel):
    """Body of ``POST /register_function``."""

    name: Text = Field(
        description="A human readable name; need not be unique.",
        json_schema_extra=_stated(maxLength=MAX_NAME_CHARS),
    )
    payload: Payload
    timeout: Timeout = None


class RegisterFunctionResponse(BaseModel):
    """Answer of ``POST /register_function``."""

    function_id: str


class ExecuteFunctionBody(BaseModel):
    """Body of ``POST /execute_function``; the payload pickles ``((args), {kwargs})``."""

    function_id: FunctionId
    payload: Payload
    timeout: Timeout = None
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
    request_id: Text | None = Field(
        default=None,
        max_length=MAX_BATCH_REQUEST_ID_CHARS,
        description="Idempotency key: a retry with the same key returns the same task ids.",
    )


class ExecuteBatchResponse(BaseModel):
    """Answer of ``POST /execute_batch``: one task id per payload, in order."""

    task_ids: list[str]


class StatusResponse(BaseModel):
    """Answer of ``GET /status/{task_id}``."""

    task_id: str
    status: str = Field(description="QUEUED, RUNNING, COMPLETED or FAILED.")


class TaskErrorBody(BaseModel):
    """Why a task FAILED."""

    cause: str = Field(
        description="RAISED, TIMEOUT, PROCESS_DIED, WORKER_LOST, BAD_PAYLOAD, "
        "RESULT_NOT_SERIALIZABLE, RESULT_TOO_LARGE or UNSPECIFIED."
    )
    message: str
    traceback: str


class ResultResponse(BaseModel):
    """Answer of ``GET /result/{task_id}``."""

    task_id: str
    status: str = Field(description="QUEUED, RUNNING, COMPLETED or FAILED.")
    result: str | None = Field(
        description="Base64 of the dill pickle of the return value (COMPLETED) or of the "
        "exception (FAILED); null while the task has not ended."
    )
    error: TaskErrorBody | None = Field(description="Set when the task FAILED, else null.")


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


class WorkersResponse(BaseModel):
    """Answer of ``GET /workers``."""

    mode: str = Field(description='"local", "pull" or "push".')
    queued: int = Field(description="Tasks waiting for a worker.")
    workers: list[WorkerBody]


class HealthResponse(BaseModel):
    """Answer of ``GET /healthz`` when the gateway is serving."""

    status: str
