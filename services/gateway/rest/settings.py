"""The REST shim's settings: one frozen model, from which its flags, variables and docs come."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from services.common.settings import Flag, Option, Port, ServiceSettings
from services.common.tls import PemFile, check_client_pair, check_exposed, check_server_pair

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
    tls_cert: Annotated[
        PemFile | None,
        Field(
            description="the shim's TLS certificate chain (PEM): with --tls-key it serves HTTPS "
            "only"
        ),
        Option(("--tls-cert",), env="FAAS_TLS_CERT"),
    ] = None
    tls_key: Annotated[
        PemFile | None,
        Field(description="the private key of --tls-cert (PEM)"),
        Option(("--tls-key",), env="FAAS_TLS_KEY"),
    ] = None
    tls_ca: Annotated[
        PemFile | None,
        Field(
            description="the CA that verifies the gateway's certificate: given, calls to the "
            "gateway use TLS"
        ),
        Option(("--tls-ca",), env="FAAS_TLS_CA"),
    ] = None
    tls_client_cert: Annotated[
        PemFile | None,
        Field(description="the shim's certificate for a gateway that requires one"),
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
            description="listen on a non-loopback --host without HTTPS (without it, such a "
            "host refuses to start)"
        ),
        Option(("--insecure",), env="FAAS_INSECURE"),
    ] = False
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

    @model_validator(mode="after")
    def _protected_unless_loopback(self) -> Self:
        check_server_pair(self.tls_cert, self.tls_key, None)
        check_client_pair(self.tls_ca, self.tls_client_cert, self.tls_client_key)
        # The gateway checks the clients' keys; what the shim adds is HTTPS to carry them.
        check_exposed(
            self.host,
            f"--host {self.host}",
            {"HTTPS (--tls-cert, --tls-key)": self.tls_cert is not None},
            self.insecure,
        )
        return self
