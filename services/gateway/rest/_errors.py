"""The one place where failures become HTTP answers.

gRPC status codes map to HTTP codes as below; every error answer is JSON ``{"detail": ...}`` with
the gRPC status message, never a stack trace and never a 500:

====================  ====
INVALID_ARGUMENT      400
FAILED_PRECONDITION   400
UNAUTHENTICATED       401, with ``WWW-Authenticate: Bearer``
NOT_FOUND             404
ALREADY_EXISTS        409
RESOURCE_EXHAUSTED    413 (payload over the size limit), or 429 with ``Retry-After`` (whole
                      seconds, rounded up) for a quota: a status with a google.rpc.RetryInfo
UNAVAILABLE           503
DEADLINE_EXCEEDED     504
anything else         502
====================  ====

A payload that is not base64 is a 400. An unexpected exception in the shim itself is logged with
its traceback and answered with a generic 502. Body validation errors keep FastAPI's 422 and its
list of errors, made safe for JSON: a rejected NaN or a lone surrogate is echoed as text.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Final, TypeVar

import grpc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.common.errors import error_reason, retry_delay
from services.gateway.rest._codec import InvalidPayloadError

__all__ = [
    "grpc_error_detail",
    "http_status_for",
    "install_error_handlers",
    "json_safe",
    "unauthenticated",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_DEFAULT_HTTP_STATUS = 502
_INTERNAL_DETAIL = "internal error in the REST shim"
# The reasons of a QuotaExceeded (which also carries a RetryInfo): 429, not 413.
_QUOTA_REASONS: Final = frozenset({"RATE_LIMITED", "OPEN_TASKS_LIMIT"})
_QUOTA_RETRY_SECONDS: Final = 1  # a quota answer that says no more waits this long


def http_status_for(code: grpc.StatusCode | None) -> int:
    """The HTTP status code for a gRPC status code (502 for codes without a mapping)."""
    if code is None:
        return _DEFAULT_HTTP_STATUS
    return _HTTP_STATUS.get(code, _DEFAULT_HTTP_STATUS)


def grpc_error_detail(error: grpc.aio.AioRpcError) -> str:
    """The gRPC status message, or the code's name when the message is empty."""
    details = error.details()
    if details:
        return details
    code = error.code()
    return f"gateway call failed: {code.name if code is not None else 'UNKNOWN'}"


def _detail(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"detail": detail}, headers=headers)


def unauthenticated(detail: str, reason: str = "") -> JSONResponse:
    """A 401 that asks for a bearer key (RFC 6750: ``invalid_token`` for a key that was given)."""
    challenge = 'Bearer realm="faas"'
    if reason != "API_KEY_MISSING":
        challenge += ', error="invalid_token"'
    return _detail(401, detail, {"WWW-Authenticate": challenge})


def _safely(read: Callable[[grpc.aio.AioRpcError], T], error: grpc.aio.AioRpcError) -> T | None:
    """A detail of ``error``'s rich status, or None when the status is not well formed."""
    try:
        return read(error)
    except (ValueError, AttributeError, TypeError):
        return None


def _quota_retry_after(error: grpc.aio.AioRpcError) -> int | None:
    """Whole seconds to wait (rounded up) when ``error`` is a quota's RESOURCE_EXHAUSTED
    (it carries a RetryInfo, or a quota's reason), else None (a payload over the limit)."""
    delay = _safely(retry_delay, error)
    if delay is None and _safely(error_reason, error) not in _QUOTA_REASONS:
        return None
    if delay is None or not math.isfinite(delay):
        return _QUOTA_RETRY_SECONDS
    return max(1, math.ceil(delay))


async def _on_rpc_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, grpc.aio.AioRpcError)
    code = exc.code()
    status_code = http_status_for(code)
    headers: dict[str, str] | None = None
    retry_after = None
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry_after = _quota_retry_after(exc)
    if retry_after is not None:
        status_code, headers = 429, {"Retry-After": str(retry_after)}
    logger.info(
        "%s %s: gateway answered %s -> HTTP %d",
        request.method,
        request.url.path,
        code.name if code is not None else "UNKNOWN",
        status_code,
    )
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return unauthenticated(grpc_error_detail(exc), _safely(error_reason, exc) or "")
    return _detail(status_code, grpc_error_detail(exc), headers)


async def _on_invalid_payload(request: Request, exc: Exception) -> JSONResponse:
    return _detail(400, str(exc))


def json_safe(value: Any) -> Any:
    """``value`` with every string valid UTF-8 and every float finite, so it renders as JSON."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        status_code=422, content={"detail": json_safe(jsonable_encoder(exc.errors()))}
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this answer so the ASGI server logs its traceback.
    logger.error(
        "%s %s: unexpected %s in the REST shim",
        request.method,
        request.url.path,
        type(exc).__name__,
    )
    return _detail(_DEFAULT_HTTP_STATUS, _INTERNAL_DETAIL)


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers that apply the mapping above."""
    app.add_exception_handler(grpc.aio.AioRpcError, _on_rpc_error)
    app.add_exception_handler(InvalidPayloadError, _on_invalid_payload)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unexpected)
