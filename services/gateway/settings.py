"""The gateway's settings: one frozen model, from which its flags, variables and docs come."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from services.common.settings import Flag, ListenAddress, LogLevel, Option, ServiceSettings

__all__ = ["GatewaySettings"]


class GatewaySettings(ServiceSettings):
    """Where the gateway listens, which dispatcher and Redis it uses, and its request limits."""

    address: Annotated[
        ListenAddress,
        Field(description="gRPC address to listen on (port 0: any free port)"),
        Option(("--address",), env="FAAS_GATEWAY_ADDRESS"),
    ] = "127.0.0.1:50051"
    dispatcher_target: Annotated[
        str,
        Field(min_length=1, description="the dispatcher's gRPC target, host:port"),
        Option(("--dispatcher",), env="FAAS_DISPATCHER_TARGET"),
    ] = "127.0.0.1:50052"
    dispatcher_token: Annotated[
        str | None,
        Field(
            description="this gateway's token (`faas tokens issue NAME --role gateway`), for a "
            "dispatcher with a tokens file"
        ),
        Option(("--dispatcher-token",), env="FAAS_DISPATCHER_TOKEN"),
    ] = None
    api_keys_file: Annotated[
        Path | None,
        Field(
            description="the clients' API keys (`faas keys issue NAME --tenant T`); unset: the "
            "gateway runs open and every call is tenant `default`"
        ),
        Option(("--api-keys-file",), env="FAAS_API_KEYS_FILE"),
    ] = None
    redis_url: Annotated[
        str,
        Field(min_length=1, description="the Redis that holds task state"),
        Option(env="REDIS_URL"),
    ] = "redis://127.0.0.1:6379/0"
    key_prefix: Annotated[str, Field(description="prefix of every Redis key")] = "faas:"
    max_payload_bytes: Annotated[
        int, Field(ge=1, description="the largest function or arguments payload accepted")
    ] = 16 * 1024 * 1024
    max_batch_items: Annotated[
        int, Field(ge=1, description="the most payloads one ExecuteBatch may carry")
    ] = 10_000
    default_task_timeout_seconds: Annotated[
        float,
        Field(
            ge=0,
            description="the time limit of a task whose request and function set none "
            "(0: none); over it the task FAILS TIMEOUT",
        ),
    ] = 3600
    payload_check_processes: Annotated[
        int, Field(ge=1, description="processes that check large payloads off the event loop")
    ] = 1
    max_pending_check_bytes: Annotated[
        int,
        Field(ge=1, description="payload bytes being checked or waiting; past it: UNAVAILABLE"),
    ] = 128 * 1024 * 1024
    max_wait_seconds: Annotated[
        float, Field(ge=0, description="upper bound of a GetResult long poll")
    ] = 60.0
    recheck_seconds: Annotated[
        float,
        Field(gt=0, description="how often a waiter re-reads Redis behind the dispatcher's events"),
    ] = 2.0
    redis_timeout_seconds: Annotated[
        float, Field(gt=0, description="timeout of each Redis call")
    ] = 3.0
    shutdown_grace_seconds: Annotated[
        float, Field(ge=0, description="on SIGTERM, how long calls in progress may finish")
    ] = 5.0
    log_level: Annotated[LogLevel, Field(description="logging level")] = "INFO"
    log_json: Annotated[Flag, Field(description="log JSON lines instead of text")] = False
