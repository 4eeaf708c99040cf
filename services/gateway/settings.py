"""The gateway's settings: one frozen model, from which its flags, variables and docs come."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, model_validator

from services.common.settings import (
    Flag,
    ListenAddress,
    LogLevel,
    Option,
    Port,
    ServiceSettings,
)
from services.common.tls import PemFile, check_client_pair, check_exposed, check_server_pair

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
    tls_cert: Annotated[
        PemFile | None,
        Field(
            description="the gateway's TLS certificate chain (PEM; `faas certs init` makes "
            "one): with --tls-key it listens with TLS only"
        ),
        Option(("--tls-cert",), env="FAAS_TLS_CERT"),
    ] = None
    tls_key: Annotated[
        PemFile | None,
        Field(description="the private key of --tls-cert (PEM)"),
        Option(("--tls-key",), env="FAAS_TLS_KEY"),
    ] = None
    tls_client_ca: Annotated[
        PemFile | None,
        Field(
            description="with TLS, clients must present a certificate this CA signed "
            "(mutual TLS); unset: any client may connect"
        ),
        Option(("--tls-client-ca",), env="FAAS_TLS_CLIENT_CA"),
    ] = None
    tls_ca: Annotated[
        PemFile | None,
        Field(
            description="the CA that verifies the dispatcher's certificate: given, the link to "
            "the dispatcher is TLS"
        ),
        Option(("--tls-ca",), env="FAAS_TLS_CA"),
    ] = None
    tls_client_cert: Annotated[
        PemFile | None,
        Field(description="this gateway's certificate for a dispatcher that requires one"),
        Option(("--tls-client-cert",), env="FAAS_TLS_CLIENT_CERT"),
    ] = None
    tls_client_key: Annotated[
        PemFile | None,
        Field(description="the private key of --tls-client-cert"),
        Option(("--tls-client-key",), env="FAAS_TLS_CLIENT_KEY"),
    ] = None
    insecure: Annotated[
        Flag,
        Field(
            description="listen on a non-loopback --address without TLS or API keys (without "
            "it, such an address refuses to start)"
        ),
        Option(("--insecure",), env="FAAS_INSECURE"),
    ] = False
    tenant_submit_rate: Annotated[
        float,
        Field(
            ge=0,
            description="tasks a second each tenant may submit, per gateway process (0: no "
            "limit); over it: RESOURCE_EXHAUSTED / 429 with a retry delay, nothing stored",
        ),
    ] = 0.0
    tenant_submit_burst: Annotated[
        float,
        Field(
            ge=0,
            description="tasks a tenant may submit at once above its rate (0: one second's "
            "worth); a larger batch waits for a full bucket",
        ),
    ] = 0.0
    tenant_max_open_tasks: Annotated[
        int,
        Field(
            ge=0,
            description="tasks QUEUED or RUNNING at once per tenant, across every gateway (0: no "
            "limit); a batch over it is refused whole",
        ),
    ] = 0
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
    metrics_port: Annotated[
        Port | None,
        Field(
            description="serve Prometheus metrics at http://HOST:PORT/metrics, HOST the one of "
            "--address (0: any free port); unset: no metrics"
        ),
        Option(("--metrics-port",), env="FAAS_GATEWAY_METRICS_PORT", default_doc="off"),
    ] = None
    shutdown_grace_seconds: Annotated[
        float, Field(ge=0, description="on SIGTERM, how long calls in progress may finish")
    ] = 5.0
    log_level: Annotated[LogLevel, Field(description="logging level")] = "INFO"
    log_json: Annotated[Flag, Field(description="log JSON lines instead of text")] = False

    @model_validator(mode="after")
    def _protected_unless_loopback(self) -> Self:
        check_server_pair(self.tls_cert, self.tls_key, self.tls_client_ca)
        check_client_pair(self.tls_ca, self.tls_client_cert, self.tls_client_key)
        check_exposed(
            self.address.rpartition(":")[0],
            f"--address {self.address}",
            {
                "TLS (--tls-cert, --tls-key)": self.tls_cert is not None,
                "API keys (--api-keys-file)": self.api_keys_file is not None,
            },
            self.insecure,
        )
        return self
