"""The FastAPI app of the REST shim: one endpoint per gateway call.

No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at run time,
and the ``wait`` bound refers to the settings in ``create_app``'s scope.
"""

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import grpc
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway.limits import MAX_ID_CHARS, max_body_bytes
from services.gateway.rest._body_limit import BodyLimitMiddleware
from services.gateway.rest._client import GatewayClient
from services.gateway.rest._codec import INVALID_BASE64, InvalidPayloadError, decode_payload
from services.gateway.rest._convert import (
    function_body,
    placement_message,
    result_body,
    runtime_message,
    status_body,
    workers_body,
)
from services.gateway.rest._docs import install_docs
from services.gateway.rest._errors import grpc_error_detail, install_error_handlers
from services.gateway.rest._listings import listings_router
from services.gateway.rest._models import (
    ExecuteBatchBody,
    ExecuteBatchResponse,
    ExecuteFunctionBody,
    ExecuteFunctionResponse,
    FunctionResponse,
    HealthResponse,
    RegisterFunctionBody,
    RegisterFunctionResponse,
    ResultResponse,
    StatusResponse,
    TaskOutputResponse,
    WorkersResponse,
)
from services.gateway.rest._ui import close_dashboard, install_dashboard
from services.gateway.rest.settings import RestSettings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_ERROR_BODY: dict[str, Any] = {
    "content": {"application/json": {"example": {"detail": "the gRPC status message"}}}
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid argument or payload not base64", **_ERROR_BODY},
    401: {
        "description": "No API key, or one the gateway does not know (a gateway with keys)",
        "headers": {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
        **_ERROR_BODY,
    },
    404: {"description": "Unknown function or task", **_ERROR_BODY},
    413: {"description": "Payload or request body over the size limit", **_ERROR_BODY},
    429: {
        "description": "The tenant is over a quota or rate limit; nothing was stored",
        "headers": {
            "Retry-After": {
                "description": "seconds to wait before trying again",
                "schema": {"type": "integer"},
            }
        },
        **_ERROR_BODY,
    },
    503: {"description": "Gateway, store or dispatcher unavailable", **_ERROR_BODY},
    504: {"description": "The gateway did not answer in time", **_ERROR_BODY},
}


async def _gateway(request: Request) -> GatewayClient:
    client = request.app.state.gateway
    assert isinstance(client, GatewayClient)
    return client


Gateway = Annotated[GatewayClient, Depends(_gateway)]

# Optional in the schema and here: a gateway without API keys (the default, on loopback) takes
# calls without one; a gateway with keys answers 401 for a missing one.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key (`faas keys issue NAME --tenant T`) as `Authorization: Bearer KEY`; "
    "needed when the gateway runs with `--api-keys-file` (`make run ARGS=--api-keys`).",
)
# What gRPC metadata can carry: one token of printable ASCII.
_KEY = re.compile(r"^[\x21-\x7e]{1,4096}$")


async def _api_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    if credentials is None:
        return None
    key = credentials.credentials.strip()
    if not _KEY.match(key):
        raise HTTPException(
            status_code=401,
            detail="malformed API key: expected Authorization: Bearer KEY, as `faas keys "
            "issue` prints it",
            headers={"WWW-Authenticate": 'Bearer realm="faas", error="invalid_token"'},
        )
    return key


ApiKey = Annotated[str | None, Depends(_api_key)]
# Checked by the gateway (400), stated here for the schema.
TaskId = Annotated[str, Path(json_schema_extra={"minLength": 1, "maxLength": MAX_ID_CHARS})]
FunctionIdPath = Annotated[str, Path(json_schema_extra={"minLength": 1, "maxLength": MAX_ID_CHARS})]


def _decode_batch(payloads: list[str]) -> list[bytes]:
    decoded = []
    for index, text in enumerate(payloads):
        try:
            decoded.append(decode_payload(text))
        except InvalidPayloadError:
            raise InvalidPayloadError(f"{INVALID_BASE64} (payloads[{index}])") from None
    return decoded


def create_app(settings: RestSettings) -> FastAPI:
    """Build the REST app; its lifespan opens the gRPC channel to the gateway and closes it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = GatewayClient(settings)
        app.state.gateway = client
        try:
            yield
        finally:
            await close_dashboard(app)
            await client.close()
            logger.info("REST shim closed its gateway channel")

    app = FastAPI(
        title="MPCSFaaS REST API",
        summary="A thin REST front for the MPCSFaaS gateway (faas.v1.GatewayService).",
        version="1.0",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, with local assets
        redoc_url=None,
    )
    install_error_handlers(app)
    install_docs(app)
    install_dashboard(app, _api_key)
    payload_limit = settings.max_payload_bytes
    app.add_middleware(BodyLimitMiddleware, limit=max_body_bytes(payload_limit))

    @app.post(
        "/register_function",
        summary="Register a dill-serialized function",
        responses=_ERRORS,
    )
    async def register_function(
        body: RegisterFunctionBody, gateway: Gateway, key: ApiKey
    ) -> RegisterFunctionResponse:
        payload = decode_payload(body.payload)
        response = await gateway.register_function(
            body.name,
            payload,
            body.timeout,
            runtime_message(body),
            placement_message(body),
            key=key,
        )
        return RegisterFunctionResponse(function_id=response.function_id)

    @app.get(
        "/functions/{function_id}",
        summary="What the gateway recorded about a registered function (not its payload)",
        responses=_ERRORS,
    )
    async def get_function(
        function_id: FunctionIdPath, gateway: Gateway, key: ApiKey
    ) -> FunctionResponse:
        return function_body(await gateway.get_function(function_id, key=key))

    @app.post(
        "/execute_function",
        summary="Queue one task of a registered function",
        responses=_ERRORS,
    )
    async def execute_function(
        body: ExecuteFunctionBody, gateway: Gateway, key: ApiKey
    ) -> ExecuteFunctionResponse:
        payload = decode_payload(body.payload)
        response = await gateway.execute_function(
            body.function_id,
            payload,
            body.timeout,
            body.request_id,
            placement_message(body),
            key=key,
        )
        return ExecuteFunctionResponse(task_id=response.task_id)

    @app.post(
        "/execute_batch",
        summary="Queue many tasks of one function (all or none)",
        responses=_ERRORS,
    )
    async def execute_batch(
        body: ExecuteBatchBody, gateway: Gateway, key: ApiKey
    ) -> ExecuteBatchResponse:
        payloads = _decode_batch(body.payloads)
        response = await gateway.execute_batch(
            body.function_id,
            payloads,
            body.timeout,
            body.request_id,
            placement_message(body),
            key=key,
        )
        return ExecuteBatchResponse(task_ids=list(response.task_ids))

    @app.get("/status/{task_id}", summary="Get a task's status", responses=_ERRORS)
    async def get_status(task_id: TaskId, gateway: Gateway, key: ApiKey) -> StatusResponse:
        return status_body(await gateway.get_status(task_id, key=key))

    @app.get(
        "/result/{task_id}",
        summary="Get a task's status and, once it has ended, its result",
        responses=_ERRORS,
    )
    async def get_result(
        task_id: TaskId,
        gateway: Gateway,
        key: ApiKey,
        wait: Annotated[
            float | None,
            Query(
                ge=0,
                le=settings.max_wait,
                allow_inf_nan=False,
                description="Long poll: wait up to this many seconds for the task to end.",
            ),
        ] = None,
    ) -> ResultResponse:
        return result_body(await gateway.get_result(task_id, wait, key=key))

    @app.get(
        "/logs/{task_id}",
        summary="Get what a task's function printed (stdout and stderr)",
        responses=_ERRORS,
    )
    async def get_logs(task_id: TaskId, gateway: Gateway, key: ApiKey) -> TaskOutputResponse:
        reply = await gateway.get_task_output(task_id, key=key)
        return TaskOutputResponse(
            task_id=reply.task_id, output=reply.output, truncated=reply.truncated
        )

    app.include_router(listings_router(_gateway, _api_key, _ERRORS))

    @app.get("/workers", summary="List connected workers and their load", responses=_ERRORS)
    async def list_workers(gateway: Gateway, key: ApiKey) -> WorkersResponse:
        return workers_body(await gateway.list_workers(key=key))

    @app.get(
        "/healthz",
        summary="Whether the gateway reports SERVING on its gRPC health check",
        responses={503: {"description": "The gateway is not serving", **_ERROR_BODY}},
        response_model=HealthResponse,
    )
    async def healthz(gateway: Gateway) -> HealthResponse | JSONResponse:
        try:
            serving = await gateway.health()
        except grpc.aio.AioRpcError as error:
            return JSONResponse(status_code=503, content={"detail": grpc_error_detail(error)})
        if serving != "SERVING":
            return JSONResponse(status_code=503, content={"detail": f"gateway is {serving}"})
        return HealthResponse(status="ok")

    return app
