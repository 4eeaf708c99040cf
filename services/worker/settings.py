"""The worker's settings: one frozen model, from which its flags, variables and docs come."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from services.common.enrollment import parse_token
from services.common.function_cache import FUNCTION_CACHE_BYTES
from services.common.pool import (
    ALLOWED_VARIABLES,
    RunAs,
    checked_run_as,
    code_path_entries,
    normalized_code_path,
    resolve_run_as,
)
from services.common.settings import Flag, LogLevel, Names, Option, Port, ServiceSettings
from services.common.tls import PemFile, check_client_pair

__all__ = ["WorkerSettings"]


def _default_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _target(url: str) -> str:
    """``host:port`` from a dispatcher URL that may start with grpc://, tcp:// or http://."""
    for scheme in ("grpc://", "tcp://", "http://"):
        url = url.removeprefix(scheme)
    url = url.rstrip("/")
    if not url:
        raise ValueError("expected the dispatcher's host:port")
    return url


def _pairs(value: object) -> object:
    """``"k=v,k2=v2"`` (or a list of such strings, one per repeated flag) as a dict."""
    if not isinstance(value, str | list | tuple):
        return value
    items = [value] if isinstance(value, str) else list(value)
    out: dict[str, str] = {}
    for item in items:
        for pair in str(item).split(","):
            if not pair.strip():
                continue
            key, sep, val = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"expected KEY=VALUE, got {pair.strip()!r}")
            out[key.strip()] = val.strip()
    return out


def _amounts(resources: dict[str, float]) -> dict[str, float]:
    for name, amount in resources.items():
        if amount < 0:
            raise ValueError(f"resource {name} must be >= 0, got {amount:g}")
    return resources


class WorkerSettings(ServiceSettings):
    """Which dispatcher the worker serves, with how many processes, and how it stops."""

    processes: Annotated[
        int,
        Field(ge=1, description="worker processes, each running one task at a time"),
        Option(
            positional="N_PROCESSES", env="FAAS_WORKER_PROCESSES", default_doc="number of cores"
        ),
    ] = os.cpu_count() or 1
    prefetch: Annotated[
        int,
        Field(
            ge=0,
            le=64,
            description="pull mode: the most tasks per process the worker holds beyond the one "
            "each runs; how many it holds follows how fast it drains, up to this (0: none)",
        ),
        Option(("--prefetch",), env="FAAS_WORKER_PREFETCH"),
    ] = 64
    function_cache_bytes: Annotated[
        int,
        Field(
            ge=0,
            description="the bytes of function bodies kept between tasks, least recently used "
            "dropped past it (the dispatcher sends a dropped one again; 0: no bound)",
        ),
        Option(("--function-cache-bytes",), env="FAAS_FUNCTION_CACHE_BYTES"),
    ] = FUNCTION_CACHE_BYTES
    dispatcher_target: Annotated[
        str,
        AfterValidator(_target),
        Field(description="the dispatcher, host:port (a grpc:// or tcp:// prefix is allowed)"),
        Option(positional="DISPATCHER_URL", env="FAAS_DISPATCHER_TARGET"),
    ] = "127.0.0.1:50052"
    mode: Annotated[
        Literal["", "pull", "push"],
        Field(description='insist on this dispatcher mode ("": follow the dispatcher)'),
        Option(("--mode",), env="FAAS_WORKER_MODE"),
    ] = ""
    worker_id: Annotated[
        str,
        Field(min_length=1, default_factory=_default_id, description="this worker's id"),
        Option(default_doc="the token's id, else host-pid-random"),
    ]
    token: Annotated[
        str | None,
        Field(
            description="this worker's enrolled token (`faas tokens issue ID`), for a dispatcher "
            "with a tokens file; the worker is then the id it names"
        ),
        Option(("--token",), env="FAAS_WORKER_TOKEN"),
    ] = None
    tls_ca: Annotated[
        PemFile | None,
        Field(
            description="the CA that verifies the dispatcher's certificate: given, the worker "
            "connects with TLS"
        ),
        Option(("--tls-ca",), env="FAAS_TLS_CA"),
    ] = None
    tls_client_cert: Annotated[
        PemFile | None,
        Field(description="this worker's certificate for a dispatcher that requires one"),
        Option(("--tls-client-cert",), env="FAAS_TLS_CLIENT_CERT"),
    ] = None
    tls_client_key: Annotated[
        PemFile | None,
        Field(description="the private key of --tls-client-cert"),
        Option(("--tls-client-key",), env="FAAS_TLS_CLIENT_KEY"),
    ] = None
    labels: Annotated[
        dict[str, str],
        BeforeValidator(_pairs),
        Field(
            default_factory=dict, description="labels tasks may require, KEY=VALUE[,KEY=VALUE...]"
        ),
        Option(("--label",), env="FAAS_LABELS", default_doc="none", repeatable=True),
    ]
    resources: Annotated[
        dict[str, float],
        BeforeValidator(_pairs),
        AfterValidator(_amounts),
        Field(
            default_factory=dict,
            description="resources tasks may require, NAME=AMOUNT[,NAME=AMOUNT...]",
        ),
        Option(("--resource",), env="FAAS_RESOURCES", default_doc="none", repeatable=True),
    ]
    drain_grace_seconds: Annotated[
        float,
        Field(ge=0, description="on SIGTERM, how long running tasks may take to finish"),
        Option(("--drain-grace",)),
    ] = 30.0
    max_backoff_seconds: Annotated[
        float, Field(gt=0, description="the longest wait between reconnects to the dispatcher")
    ] = 2.0
    max_result_bytes: Annotated[
        int,
        Field(
            ge=1, description="the largest serialized result; over it a task FAILS RESULT_TOO_LARGE"
        ),
    ] = 16 * 1024 * 1024
    max_output_bytes: Annotated[
        int, Field(ge=0, description="how much of a task's stdout and stderr is kept")
    ] = 64 * 1024
    max_task_memory_mb: Annotated[
        int,
        Field(
            ge=0,
            description="the memory (address space, RLIMIT_AS) a task may allocate on top of "
            "what its process maps when it starts; over it the task FAILS MEMORY_LIMIT and the "
            "process serves on (0: no limit)",
        ),
    ] = 4096
    max_task_cpu_seconds: Annotated[
        float,
        Field(
            ge=0,
            description="the CPU time (all threads, RLIMIT_CPU) a task may use; over it the "
            "task FAILS CPU_LIMIT and its process is replaced (0: no limit; the timeout bounds "
            "wall time)",
        ),
    ] = 0
    code_path: Annotated[
        str,
        AfterValidator(normalized_code_path),
        Field(
            default_factory=os.getcwd,
            description="folders (separated by "
            f"{os.pathsep!r}) task processes import users' modules from: functions pickled "
            "by reference to a module run only where it imports",
        ),
        Option(("--code-path",), env="FAAS_CODE_PATH", default_doc="the working directory"),
    ]
    pass_env: Annotated[
        Names,
        Field(
            default_factory=list,
            description="environment variables task processes get besides "
            f"{', '.join(ALLOWED_VARIABLES)} and LC_*, NAME[,NAME...]; no other reaches user code",
        ),
        Option(("--pass-env",), env="FAAS_PASS_ENV", default_doc="none", repeatable=True),
    ]
    run_as: Annotated[
        str,
        AfterValidator(checked_run_as),
        Field(
            description="the user (name or uid) task processes run as, so that user code "
            'cannot signal the worker or read what is root\'s ("": nobody when the worker '
            "runs as root, else the worker's own user)",
        ),
        Option(("--run-as",), env="FAAS_RUN_AS", default_doc="nobody if root"),
    ] = ""
    metrics_port: Annotated[
        Port | None,
        Field(
            description="serve Prometheus metrics at http://METRICS_HOST:PORT/metrics (0: any "
            "free port); unset: no metrics"
        ),
        Option(("--metrics-port",), env="FAAS_WORKER_METRICS_PORT", default_doc="off"),
    ] = None
    metrics_host: Annotated[
        str,
        Field(min_length=1, description="the address the metrics port listens on"),
        Option(("--metrics-host",), env="FAAS_WORKER_METRICS_HOST"),
    ] = "127.0.0.1"
    log_level: Annotated[LogLevel, Field(description="logging level")] = "INFO"
    log_json: Annotated[Flag, Field(description="log JSON lines instead of text")] = False

    @model_validator(mode="before")
    @classmethod
    def _id_from_token(cls, data: object) -> object:
        """Without a --worker-id of its own, an enrolled worker is the id its token names."""
        if (
            isinstance(data, dict)
            and "worker_id" not in data
            and isinstance(data.get("token"), str)
        ):
            parsed = parse_token(data["token"])
            if parsed is not None:
                return {**data, "worker_id": parsed[0]}
        return data

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        check_client_pair(self.tls_ca, self.tls_client_cert, self.tls_client_key)
        return self

    @property
    def task_user(self) -> RunAs | None:
        """Whom task processes run as, when not the worker's own user."""
        return resolve_run_as(self.run_as)

    @property
    def code_paths(self) -> tuple[str, ...]:
        """The folders of ``code_path``, in order."""
        return code_path_entries(self.code_path)
