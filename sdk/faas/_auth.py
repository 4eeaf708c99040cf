"""The client's API key on every call: ``authorization: Bearer <key>`` gRPC metadata.

An interceptor of each of the four kinds adds the entry, so unary calls and streams (WatchTasks,
WatchTask) all carry it, whichever stub method makes them.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import Any

import grpc

__all__ = ["API_KEY_ENV", "bearer_interceptors", "resolve_api_key"]

API_KEY_ENV = "FAAS_API_KEY"
# What a gRPC metadata value may hold, without spaces (a key is one token).
_KEY = re.compile(r"^[\x21-\x7e]{1,4096}$")


def resolve_api_key(api_key: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """``api_key``, else ``$FAAS_API_KEY``; None when neither is set (the gateway may run open).
    A key that cannot go in gRPC metadata (spaces, non-ASCII) is a ValueError now, not a
    confusing failure of the first call."""
    key = api_key if api_key is not None else environ.get(API_KEY_ENV, "")
    key = key.strip()
    if not key:
        return None
    if not _KEY.match(key):
        raise ValueError(
            "an API key is printable ASCII without spaces (as `faas keys issue` prints it)"
        )
    return key


def bearer_interceptors(api_key: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that add ``authorization: Bearer <api_key>`` to every call. One of each
    kind: grpc.aio files an interceptor under the first kind it is, so one object of all four
    would only ever see unary calls."""
    entry = ("authorization", f"Bearer {api_key}")
    return [
        _UnaryUnary(entry),
        _UnaryStream(entry),
        _StreamUnary(entry),
        _StreamStream(entry),
    ]


class _Bearer:
    def __init__(self, entry: tuple[str, str]) -> None:
        self._entry = entry

    def __repr__(self) -> str:
        return f"{type(self).__name__}(authorization: Bearer ***)"  # never the key itself

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        entries = [(k, v) for k, v in (details.metadata or ()) if k != "authorization"]
        metadata = grpc.aio.Metadata(*entries, self._entry)
        replaced: grpc.aio.ClientCallDetails = details._replace(  # type: ignore[attr-defined]
            metadata=metadata
        )
        return replaced


class _UnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class _UnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class _StreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class _StreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)
