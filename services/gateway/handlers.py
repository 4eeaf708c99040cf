"""The gateway's gRPC method handlers: the generated ones, but a malformed request is answered.

gRPC Python reports a request that does not parse as UNKNOWN (or INTERNAL), a server fault. Here
each request is parsed by a deserializer that never raises: bytes that are not the method's
message become INVALID_ARGUMENT (reason MALFORMED_REQUEST) before the servicer sees them. On a
request stream (WatchTasks), the servicer's iterator raises that InvalidArgument where the
malformed message would have been, and the servicer's status boundary answers it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from faas.v1 import gateway_pb2
from google.protobuf import message, message_factory

from services.common.errors import InvalidArgument, to_status

SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"]

Context = grpc.aio.ServicerContext[Any, Any]
Unary = Callable[[Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Context], AsyncIterator[Any]]
Bidi = Callable[[AsyncIterator[Any], Context], AsyncIterator[Any]]


class _Malformed:
    """Stands in for a request that did not parse."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _parser(request_class: type[message.Message]) -> Callable[[bytes], object]:
    def parse(raw: bytes) -> object:
        try:
            return request_class.FromString(raw)
        except Exception as exc:  # DecodeError, and whatever a hostile message may provoke
            return _Malformed(str(exc) or type(exc).__name__)

    return parse


def _malformed(request: _Malformed) -> InvalidArgument:
    return InvalidArgument(f"malformed request: {request.error}", "MALFORMED_REQUEST")


async def _refuse(request: _Malformed, context: Context) -> None:
    await context.abort_with_status(to_status(_malformed(request)))


def _unary(behavior: Unary) -> Unary:
    async def handle(request: Any, context: Context) -> Any:
        if isinstance(request, _Malformed):
            await _refuse(request, context)
        return await behavior(request, context)

    return handle


def _streaming(behavior: Streaming) -> Streaming:
    async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
        if isinstance(request, _Malformed):
            await _refuse(request, context)
        async for response in behavior(request, context):
            yield response

    return handle


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Malformed):
            raise _malformed(request)
        yield request


def _bidi(behavior: Bidi) -> Bidi:
    async def handle(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        async for response in behavior(_checked(requests), context):
            yield response

    return handle


Observer = Callable[[str, grpc.StatusCode | None, BaseException | None], None]
"""Told of each call's end: the method, its status code (None: OK) and the error it ended with."""


def _observed_unary(name: str, behavior: Unary, observe: Observer) -> Unary:
    async def handle(request: Any, context: Context) -> Any:
        error: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            observe(name, _code(context, error), error)

    return handle


def _observed_stream(name: str, behavior: Any, observe: Observer) -> Any:
    async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
        error: BaseException | None = None
        try:
            async for response in behavior(request, context):
                yield response
        except BaseException as exc:
            error = exc
            raise
        finally:
            observe(name, _code(context, error), error)

    return handle


def _code(context: Context, error: BaseException | None) -> grpc.StatusCode | None:
    code: grpc.StatusCode | None = context.code()
    if code is None and error is not None and not isinstance(error, grpc.aio.AbortError):
        return grpc.StatusCode.CANCELLED if context.cancelled() else grpc.StatusCode.UNKNOWN
    return code


def add_gateway_service(
    servicer: object, server: grpc.aio.Server, observe: Observer | None = None
) -> None:
    """Registers ``servicer``'s methods for ``faas.v1.GatewayService`` on ``server``; each
    call's end is told to ``observe`` (the metrics), if given."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in SERVICE.methods:
        if method.client_streaming and not method.server_streaming:
            raise TypeError(f"{method.full_name}: client streaming is not handled here")
        parse = _parser(message_factory.GetMessageClass(method.input_type))
        serialize = message_factory.GetMessageClass(method.output_type).SerializeToString
        behavior = getattr(servicer, method.name)
        if method.client_streaming:
            handle: Any = _bidi(behavior)
            if observe is not None:
                handle = _observed_stream(method.name, handle, observe)
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                handle, request_deserializer=parse, response_serializer=serialize
            )
        elif method.server_streaming:
            handle = _streaming(behavior)
            if observe is not None:
                handle = _observed_stream(method.name, handle, observe)
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                handle, request_deserializer=parse, response_serializer=serialize
            )
        else:
            handle = _unary(behavior)
            if observe is not None:
                handle = _observed_unary(method.name, handle, observe)
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                handle, request_deserializer=parse, response_serializer=serialize
            )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
