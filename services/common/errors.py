"""The platform's own errors, and the one place they become gRPC statuses.

Hierarchy::

    FaaSError                 base; never raised itself
    ├── InvalidArgument       INVALID_ARGUMENT  (REST 400)
    ├── NotFound              NOT_FOUND         (REST 404)
    ├── AlreadyExists         ALREADY_EXISTS    (REST 409)
    ├── PayloadTooLarge       RESOURCE_EXHAUSTED (REST 413)
    ├── QuotaExceeded         RESOURCE_EXHAUSTED (REST 429), with a google.rpc.RetryInfo
    ├── Unauthenticated       UNAUTHENTICATED   (REST 401)
    └── Unavailable           UNAVAILABLE       (REST 503)
        └── StoreUnavailable  Redis is away; tells gRPC retry policies not to retry

Every status carries a ``google.rpc.ErrorInfo`` whose ``reason`` (e.g. ``TASK_NOT_FOUND``) a
client can branch on; the message is for people.
"""

from __future__ import annotations

from typing import NamedTuple

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "faas.mpcsfaas.dev"


class FaaSError(Exception):
    """Base of the errors that map to a gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    # False tells gRPC clients' automatic retry policies not to repeat the call (retry pushback).
    retryable: bool = True

    def __init__(self, message: str, reason: str, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata = metadata


class InvalidArgument(FaaSError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(FaaSError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(FaaSError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PayloadTooLarge(FaaSError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class QuotaExceeded(FaaSError):
    """A tenant is over a quota or rate limit: nothing was stored. ``retry_after`` (seconds)
    goes on the wire as a ``google.rpc.RetryInfo`` detail (REST: a ``Retry-After`` header).
    Not retried by channel policies: the caller waits ``retry_after`` first."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retryable = False

    def __init__(self, message: str, reason: str, retry_after: float, **metadata: str) -> None:
        super().__init__(message, reason, **metadata)
        self.retry_after = max(0.0, retry_after)


class Unauthenticated(FaaSError):
    """A call without a valid API key (missing, malformed, unknown or revoked)."""

    code = grpc.StatusCode.UNAUTHENTICATED
    retryable = False


class Unavailable(FaaSError):
    code = grpc.StatusCode.UNAVAILABLE


class StoreUnavailable(Unavailable):
    """Redis cannot be reached. Not retried by channel policies: each try may take the full
    Redis timeout, and the caller's own retry (or a 503) is the better answer."""

    retryable = False


def to_status(error: FaaSError) -> grpc.Status:
    """The rich gRPC status for ``error``, with an ErrorInfo detail."""
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    details = [detail]
    if isinstance(error, QuotaExceeded):
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(round(error.retry_after * 1e9))
        retry_detail = any_pb2.Any()
        retry_detail.Pack(retry)
        details.append(retry_detail)
    status = status_pb2.Status(
        code=getattr(code_pb2, error.code.name), message=error.message, details=details
    )
    result: grpc.Status = rpc_status.to_status(status)
    if not error.retryable:  # gRPC retry spec: a negative pushback means "do not retry"
        pushback = (("grpc-retry-pushback-ms", "-1"),)
        result = _Status(result.code, result.details, (*result.trailing_metadata, *pushback))
    return result


class _Status(
    NamedTuple(
        "_Status",
        [
            ("code", grpc.StatusCode),
            ("details", str),
            ("trailing_metadata", tuple[tuple[str, str | bytes], ...]),
        ],
    ),
    grpc.Status,
):
    """A grpc.Status with our own trailing metadata (the shape grpc_status itself uses)."""


def retry_delay(error: grpc.aio.AioRpcError | grpc.RpcError) -> float | None:
    """The RetryInfo delay of a failed call in seconds, or None when it has none."""
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToNanoseconds()) / 1e9
    return None


def error_reason(error: grpc.aio.AioRpcError | grpc.RpcError) -> str:
    """The ErrorInfo reason of a failed call, or "" when it has none."""
    status = rpc_status.from_call(error)
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""
