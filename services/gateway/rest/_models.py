"""Request and response bodies of the REST API (the fixed public contract)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

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

# The largest value a google.protobuf.Duration can hold (10,000 years), in seconds.
MAX_DURATION_SECONDS = 315_576_000_000

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
    Field(description='Base64 of the dill pickle: codecs.encode(dill.dumps(obj), "base64").'),
]


class RegisterFunctionBody(BaseModel):
    """Body of ``POST /register_function``."""

    name: str = Field(description="A human readable name; need not be unique.")
    payload: Payload
    timeout: Timeout = None


class RegisterFunctionResponse(BaseModel):
    """Answer of ``POST /register_function``."""

    function_id: str


class ExecuteFunctionBody(BaseModel):
    """Body of ``POST /execute_function``; the payload pickles ``((args), {kwargs})``."""

    function_id: str
    payload: Payload
    timeout: Timeout = None
    request_id: str | None = Field(
        default=None,
        description="Idempotency key: a retry with the same key returns the same task_id.",
    )


class ExecuteFunctionResponse(BaseModel):
    """Answer of ``POST /execute_function``."""

    task_id: str


class ExecuteBatchBody(BaseModel):
    """Body of ``POST /execute_batch``: one payload per task, all stored or none."""

    function_id: str
    payloads: list[Payload]
    timeout: Timeout = None
    request_id: str | None = Field(
        default=None,
        max_length=100,
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
        "RESULT_NOT_SERIALIZABLE or UNSPECIFIED."
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
