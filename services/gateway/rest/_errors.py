"""The one place where failures become HTTP answers.

gRPC status codes map to HTTP codes as below; every error answer is JSON ``{"detail": ...}`` with
the gRPC status message, never a stack trace and never a 500:

====================  ====
INVALID_ARGUMENT      400
FAILED_PRECONDITION   400
NOT_FOUND             404
ALREADY_EXISTS        409
RESOURCE_EXHAUSTED    413 (payload over the size limit)
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
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.gateway.rest._codec import InvalidPayloadError

__all__ = ["grpc_error_detail", "http_status_for", "install_error_handlers", "json_safe"]

logger = logging.getLogger(__name__)

_HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_DEFAULT_HTTP_STATUS = 502
_INTERNAL_DETAIL = "internal error in the REST shim"


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


def _detail(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"detail": detail})


async def _on_rpc_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, grpc.aio.AioRpcError)
    code = exc.code()
    status_code = http_status_for(code)
    logger.info(
        "%s %s: gateway answered %s -> HTTP %d",
        request.method,
        request.url.path,
        code.name if code is not None else "UNKNOWN",
        status_code,
    )
    return _detail(status_code, grpc_error_detail(exc))


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
