"""The SDK's exceptions, and the one place gRPC statuses become them.

Hierarchy::

    FaaSError                    base of every error the SDK raises
    ├── NotFound                 an unknown id (also a LookupError)
    │   ├── FunctionNotFound     reason FUNCTION_NOT_FOUND
    │   └── TaskNotFound         reason TASK_NOT_FOUND
    ├── InvalidArgument          the gateway rejected a request or payload (INVALID_ARGUMENT)
    ├── PayloadTooLarge          a payload is over the size limit (RESOURCE_EXHAUSTED)
    ├── QuotaExceeded            the tenant is over a quota or rate limit: nothing was stored;
    │                            ``retry_after`` says how many seconds to wait (RESOURCE_EXHAUSTED
    │                            with a google.rpc.RetryInfo)
    ├── AuthenticationError      no API key, or one the gateway does not know (UNAUTHENTICATED)
    ├── ServiceUnavailable       the gateway, its store or the dispatcher could not be reached,
    │                            after the client's retries with backoff (UNAVAILABLE)
    ├── FaaSTimeout              a wait ran out: the task had not ended in time, or the gateway
    │                            did not answer within the call's deadline (also a TimeoutError)
    ├── TaskFailed               the task FAILED for a reason other than the function raising
    │                            (time limit, process died, worker lost, bad payload, ...)
    └── ClientClosed             the client was closed while a future was still waiting

A function that raises is not an SDK error: ``result()`` re-raises the function's own exception,
with the remote traceback attached as a note. Each error raised for a gRPC status keeps the
status ``code`` name and the ``google.rpc.ErrorInfo`` ``reason`` (e.g. ``"TASK_NOT_FOUND"``), so
programs can branch on them, never on message text::

    try:
        client.status(task_id)
    except TaskNotFound as exc:
        print(exc.reason)  # TASK_NOT_FOUND
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "AuthenticationError",
    "ClientClosed",
    "FaaSError",
    "FaaSTimeout",
    "FunctionNotFound",
    "InvalidArgument",
    "NotFound",
    "PayloadTooLarge",
    "QuotaExceeded",
    "ServiceUnavailable",
    "TaskFailed",
    "TaskNotFound",
    "error_reason",
    "from_rpc_error",
    "retry_delay",
]


class FaaSError(Exception):
    """Base of the SDK's errors.

    ``code`` is the gRPC status name (e.g. ``"NOT_FOUND"``) or ``""`` for errors raised locally;
    ``reason`` is the ErrorInfo reason the gateway sent, or a reason of the SDK's own.
    """

    def __init__(self, message: str, *, code: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason


class NotFound(FaaSError, LookupError):
    """An id the gateway does not know."""


class FunctionNotFound(NotFound):
    """No function is registered under this id."""


class TaskNotFound(NotFound):
    """No task has this id."""


class InvalidArgument(FaaSError, ValueError):
    """The gateway rejected the request: a malformed id, an empty or non-pickle payload, ..."""


class PayloadTooLarge(FaaSError):
    """A serialized function or argument tuple is over the gateway's size limit."""


class QuotaExceeded(FaaSError):
    """The tenant is over a quota (``reason`` ``OPEN_TASKS_LIMIT``) or a rate limit
    (``RATE_LIMITED``): nothing was stored. Try again after ``retry_after`` seconds."""

    def __init__(
        self, message: str, *, code: str = "", reason: str = "", retry_after: float = 0.0
    ) -> None:
        super().__init__(message, code=code, reason=reason)
        self.retry_after = retry_after


class AuthenticationError(FaaSError):
    """The gateway wants an API key (``reason`` ``API_KEY_MISSING``) or does not know the one
    given (``API_KEY_INVALID``: unknown, revoked or malformed). Pass ``api_key=`` or set
    ``FAAS_API_KEY``."""


class ServiceUnavailable(FaaSError):
    """The gateway (or its store or dispatcher) could not be reached, even after retrying."""


class FaaSTimeout(FaaSError, TimeoutError):
    """A wait ran out before the task ended, or a call ran past its deadline."""


class ClientClosed(FaaSError):
    """The client was closed before the task's future was resolved."""


class TaskFailed(FaaSError):
    """The task FAILED, but not because the function raised.

    ``cause`` is the failure cause without its prefix (``"TIMEOUT"``, ``"PROCESS_DIED"``,
    ``"WORKER_LOST"``, ``"BAD_PAYLOAD"``, ``"RESULT_NOT_SERIALIZABLE"``, ...); ``__cause__`` is
    the deserialized exception the worker recorded, when there is one::

        try:
            future.result()
        except TaskFailed as exc:
            print(exc.cause, exc.message)
    """

    def __init__(self, task_id: str, cause: str, message: str, traceback: str = "") -> None:
        super().__init__(f"task {task_id} failed ({cause}): {message}", reason=cause)
        self.task_id = task_id
        self.cause = cause
        self.task_message = message
        self.traceback = traceback


_BY_CODE: dict[grpc.StatusCode, type[FaaSError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.RESOURCE_EXHAUSTED: PayloadTooLarge,
    grpc.StatusCode.UNAVAILABLE: ServiceUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: FaaSTimeout,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
}

_BY_REASON: dict[str, type[FaaSError]] = {
    "FUNCTION_NOT_FOUND": FunctionNotFound,
    "TASK_NOT_FOUND": TaskNotFound,
    "PAYLOAD_TOO_LARGE": PayloadTooLarge,
}


def _rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)
    except (ValueError, AttributeError, TypeError):  # an inconsistent or missing status
        return None
    return status


def error_reason(error: grpc.RpcError) -> str:
    """The ``google.rpc.ErrorInfo`` reason of a failed call, or ``""`` when it has none."""
    status = _rich_status(error)
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def retry_delay(error: grpc.RpcError) -> float | None:
    """The ``google.rpc.RetryInfo`` delay of a failed call in seconds, or None without one."""
    status = _rich_status(error)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return max(0.0, float(info.retry_delay.ToNanoseconds()) / 1e9)
    return None


def _code_and_details(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    code = getattr(error, "code", None)
    details = getattr(error, "details", None)
    status_code = code() if callable(code) else grpc.StatusCode.UNKNOWN
    text = details() if callable(details) else str(error)
    return status_code, str(text or status_code.name.lower())


def from_rpc_error(error: grpc.RpcError, *, attempts: int = 1, target: str = "") -> FaaSError:
    """The SDK error for a failed gRPC call to ``target``, tried ``attempts`` times."""
    code, details = _code_and_details(error)
    reason = error_reason(error)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        delay = retry_delay(error)
        if delay is not None:  # a quota, not a size: only quotas say when to try again
            return QuotaExceeded(details, code=code.name, reason=reason, retry_after=delay)
    kind = _BY_REASON.get(reason) or _BY_CODE.get(code, FaaSError)
    message = details
    if kind is ServiceUnavailable:
        if not reason and target:  # the transport failed: the gateway itself is unreachable
            message = f"cannot reach the gateway at {target}: {details}"
        if attempts > 1:
            message = f"{message} (after {attempts} attempts)"
    return kind(message, code=code.name, reason=reason)
