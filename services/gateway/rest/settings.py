"""The REST shim's settings: one frozen model, from which its flags, variables and docs come."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field

from services.common.settings import Flag, Option, Port, ServiceSettings

__all__ = ["RestSettings"]


def _to_level(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


class RestSettings(ServiceSettings):
    """Where the shim listens, which gateway it talks to, and how long it waits for it.

    ``call_timeout`` bounds every gRPC call (seconds); a long poll on ``/result`` may add up to
    ``max_wait`` seconds on top. ``shutdown_grace`` bounds how many seconds in-flight requests
    may still run after SIGTERM.
    """

    variable_prefix: ClassVar[str] = "FAAS_REST_"

    host: Annotated[str, Field(min_length=1, description="address to listen on")] = "127.0.0.1"
    port: Annotated[Port, Field(description="port to listen on (0: any free port)")] = 8000
    gateway_target: Annotated[
        str,
        Field(min_length=1, description="the gateway's gRPC target, host:port"),
        Option(("--gateway",), env="FAAS_GATEWAY_TARGET"),
    ] = "127.0.0.1:50051"
    max_payload_bytes: Annotated[
        int,
        Field(ge=1, description="the gateway's payload limit; bodies over it (base64) are 413"),
        Option(env="FAAS_MAX_PAYLOAD_BYTES"),
    ] = 16 * 1024 * 1024
    call_timeout: Annotated[
        float, Field(gt=0, description="seconds every gRPC call to the gateway may take")
    ] = 10.0
    max_wait: Annotated[
        float, Field(ge=0, description="the longest long poll a client may ask for, in seconds")
    ] = 60.0
    shutdown_grace: Annotated[
        int, Field(ge=0, description="seconds requests in flight may still run after SIGTERM")
    ] = 5
    log_level: Annotated[
        Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "TRACE"],
        BeforeValidator(_to_level),
        Field(description="logging level; TRACE adds uvicorn's protocol traces"),
        Option(env="FAAS_LOG_LEVEL"),
    ] = "INFO"
    log_json: Annotated[
        Flag, Field(description="log JSON lines instead of text"), Option(env="FAAS_LOG_JSON")
    ] = False
