"""The dispatcher's settings: one frozen model, from which its flags, variables and docs come."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Self, get_args

from pydantic import AfterValidator, Field, model_validator

from services.common.pool import (
    ALLOWED_VARIABLES,
    RunAs,
    checked_run_as,
    code_path_entries,
    normalized_code_path,
    resolve_run_as,
)
from services.common.settings import (
    Flag,
    ListenAddress,
    LogLevel,
    Names,
    Option,
    Port,
    ServiceSettings,
)
from services.common.tls import PemFile, check_exposed, check_server_pair

__all__ = ["MODES", "DispatcherSettings", "Mode"]

Mode = Literal["local", "pull", "push"]
MODES: tuple[str, ...] = get_args(Mode)

_MIB = 1024 * 1024


class DispatcherSettings(ServiceSettings):
    """Where the dispatcher listens, how it schedules, and when it gives up on a worker."""

    address: Annotated[
        ListenAddress,
        Field(description="gRPC address to listen on (port 0: any free port)"),
        Option(
            ("--address",),
            env="FAAS_DISPATCHER_ADDRESS",
            host_flags=("--host",),
            port_flags=("-p", "--port"),
        ),
    ] = "127.0.0.1:50052"
    mode: Annotated[
        Mode,
        Field(description="how tasks reach workers"),
        Option(("-m", "--mode"), env="FAAS_DISPATCHER_MODE"),
    ] = "push"
    local_processes: Annotated[
        int,
        Field(ge=1, description="local mode: the worker processes the dispatcher runs itself"),
        Option(("-w", "--workers"), env="FAAS_WORKER_PROCESSES", default_doc="number of cores"),
    ] = os.cpu_count() or 1
    redis_url: Annotated[
        str,
        Field(min_length=1, description="the Redis that holds task state"),
        Option(env="REDIS_URL"),
    ] = "redis://127.0.0.1:6379/0"
    key_prefix: Annotated[str, Field(description="prefix of every Redis key")] = "faas:"
    heartbeat_seconds: Annotated[
        float, Field(gt=0, description="seconds between heartbeats"), Option(("--heartbeat",))
    ] = 1.0
    missed_heartbeats: Annotated[
        int, Field(ge=1, description="heartbeats a worker may miss in a row before it is dead")
    ] = 3
    max_attempts: Annotated[
        int, Field(ge=1, description="attempts per task before a lost worker makes it FAILED")
    ] = 3
    prefetch: Annotated[
        int,
        Field(
            ge=0,
            description="push mode: the fewest tasks a worker holds beyond its processes",
        ),
    ] = 0
    retry_process_death: Annotated[
        Flag,
        Field(description="run a task again (up to the attempts) when its process dies"),
    ] = False
    result_ttl_seconds: Annotated[
        float,
        Field(
            ge=0, description="seconds a finished task and its result stay in Redis; 0: for good"
        ),
        Option(("--result-ttl",)),
    ] = 0.0
    reconcile_seconds: Annotated[
        float,
        Field(gt=0, description="how often QUEUED tasks in Redis are compared with those held"),
    ] = 5.0
    recovery_grace_seconds: Annotated[
        float,
        Field(ge=0, description="after a restart, how long RUNNING tasks wait for their worker"),
    ] = 5.0
    redis_timeout_seconds: Annotated[
        float, Field(gt=0, description="timeout of each Redis call")
    ] = 3.0
    max_worker_capacity: Annotated[
        int,
        Field(ge=1, description="the most processes or work-request slots one worker may claim"),
    ] = 256
    tokens_file: Annotated[
        Path | None,
        Field(
            description="the enrolled workers and gateways (`faas tokens issue`): each must "
            "connect with its token; unset: anyone who reaches the port may (a warning at start)"
        ),
        Option(("--tokens-file",), env="FAAS_TOKENS_FILE"),
    ] = None
    tls_cert: Annotated[
        PemFile | None,
        Field(
            description="the dispatcher's TLS certificate chain (PEM; `faas certs init` makes "
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
            description="with TLS, workers and gateways must present a certificate this CA "
            "signed (mutual TLS); unset: any may connect (tokens still apply)"
        ),
        Option(("--tls-client-ca",), env="FAAS_TLS_CLIENT_CA"),
    ] = None
    insecure: Annotated[
        Flag,
        Field(
            description="listen on a non-loopback --address without TLS or a tokens file "
            "(without it, such an address refuses to start)"
        ),
        Option(("--insecure",), env="FAAS_INSECURE"),
    ] = False
    hello_timeout_seconds: Annotated[
        float, Field(gt=0, description="a worker stream whose hello does not come is closed then")
    ] = 10.0
    timeout_grace_seconds: Annotated[
        float,
        Field(ge=0, description="a worker holding a task past its timeout plus this loses it"),
    ] = 10.0
    sweep_seconds: Annotated[
        float,
        Field(gt=0, description="how often RUNNING tasks are checked for an attempt none holds"),
    ] = 5.0
    no_worker_timeout_seconds: Annotated[
        float,
        Field(
            gt=0,
            description="a task that no connected worker can take (labels, resources, Python) "
            "FAILS NO_COMPATIBLE_WORKER after this long",
        ),
        Option(("--no-worker-timeout",)),
    ] = 60.0
    max_result_bytes: Annotated[
        int, Field(ge=1, description="local mode: the largest serialized result a task may return")
    ] = 16 * _MIB
    max_output_bytes: Annotated[
        int, Field(ge=0, description="local mode: how much of a task's stdout and stderr is kept")
    ] = 64 * 1024
    max_task_memory_mb: Annotated[
        int,
        Field(
            ge=0,
            description="local mode: the memory (address space, RLIMIT_AS) a task may "
            "allocate on top of what its process maps when it starts; over it the task FAILS "
            "MEMORY_LIMIT and the process serves on (0: no limit)",
        ),
    ] = 4096
    max_task_cpu_seconds: Annotated[
        float,
        Field(
            ge=0,
            description="local mode: the CPU time (all threads, RLIMIT_CPU) a task may use; "
            "over it the task FAILS CPU_LIMIT and its process is replaced (0: no limit; the "
            "timeout bounds wall time)",
        ),
    ] = 0
    code_path: Annotated[
        str,
        AfterValidator(normalized_code_path),
        Field(
            default_factory=os.getcwd,
            description=f"local mode: folders (separated by {os.pathsep!r}) its processes "
            "import users' modules from (functions pickled by reference)",
        ),
        Option(("--code-path",), env="FAAS_CODE_PATH", default_doc="the working directory"),
    ]
    pass_env: Annotated[
        Names,
        Field(
            default_factory=list,
            description="local mode: environment variables its processes get besides "
            f"{', '.join(ALLOWED_VARIABLES)} and LC_*, NAME[,NAME...]",
        ),
        Option(("--pass-env",), env="FAAS_PASS_ENV", default_doc="none", repeatable=True),
    ]
    run_as: Annotated[
        str,
        AfterValidator(checked_run_as),
        Field(
            description="local mode: the user (name or uid) its processes run as "
            '("": nobody when the dispatcher runs as root, else its own user)',
        ),
        Option(("--run-as",), env="FAAS_RUN_AS", default_doc="nobody if root"),
    ] = ""
    metrics_port: Annotated[
        Port | None,
        Field(
            description="serve Prometheus metrics at http://HOST:PORT/metrics, HOST the one of "
            "--address (0: any free port); unset: no metrics"
        ),
        Option(("--metrics-port",), env="FAAS_DISPATCHER_METRICS_PORT", default_doc="off"),
    ] = None
    slow_wait_seconds: Annotated[
        float,
        Field(
            gt=0,
            description="a queued task waiting longer than this counts in the metric "
            "faas_tasks_waiting_too_long",
        ),
    ] = 30.0
    shutdown_grace_seconds: Annotated[
        float, Field(ge=0, description="on SIGTERM, how long work in progress may finish")
    ] = 5.0
    log_level: Annotated[LogLevel, Field(description="logging level")] = "INFO"
    log_json: Annotated[Flag, Field(description="log JSON lines instead of text")] = False

    @model_validator(mode="after")
    def _protected_unless_loopback(self) -> Self:
        check_server_pair(self.tls_cert, self.tls_key, self.tls_client_ca)
        check_exposed(
            self.address.rpartition(":")[0],
            f"--address {self.address}",
            {
                "TLS (--tls-cert, --tls-key)": self.tls_cert is not None,
                "enrolled workers (--tokens-file)": self.tokens_file is not None,
            },
            self.insecure,
        )
        return self

    @property
    def task_user(self) -> RunAs | None:
        """Whom local mode's processes run as, when not the dispatcher's own user."""
        return resolve_run_as(self.run_as)

    @property
    def code_paths(self) -> tuple[str, ...]:
        """The folders of ``code_path``, in order."""
        return code_path_entries(self.code_path)

    @property
    def dead_after_seconds(self) -> float:
        """Silence after which a worker is dead."""
        return self.heartbeat_seconds * self.missed_heartbeats
