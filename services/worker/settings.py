"""The worker's settings: one frozen value, built from the environment at the entry point."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field


def _default_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    dispatcher_target: str = "127.0.0.1:50052"
    processes: int = os.cpu_count() or 1
    # "pull" or "push" to insist on a dispatcher mode; "" takes whatever the dispatcher runs.
    mode: str = ""
    worker_id: str = field(default_factory=_default_id)
    # On SIGTERM: how long running tasks may take to finish before they are abandoned.
    drain_grace_seconds: float = 30.0
    max_backoff_seconds: float = 2.0
    # The largest serialized result a task may return; over it the task FAILS RESULT_TOO_LARGE.
    max_result_bytes: int = 16 * 1024 * 1024
    # How much of a task's stdout and stderr is kept (the rest is dropped, never logged whole).
    max_output_bytes: int = 64 * 1024
    log_level: str = "INFO"
    log_json: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerSettings:
        d = cls()
        return cls(
            dispatcher_target=environ.get("FAAS_DISPATCHER_TARGET", d.dispatcher_target),
            processes=int(environ.get("FAAS_WORKER_PROCESSES", d.processes)),
            mode=environ.get("FAAS_WORKER_MODE", d.mode),
            drain_grace_seconds=float(
                environ.get("FAAS_DRAIN_GRACE_SECONDS", d.drain_grace_seconds)
            ),
            log_level=environ.get("FAAS_LOG_LEVEL", d.log_level),
            log_json=environ.get("FAAS_LOG_JSON", "") in ("1", "true"),
        )
