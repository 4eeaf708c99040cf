"""The dispatcher's settings: one frozen value, built from the environment at the entry point."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

MODES = ("local", "pull", "push")


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    address: str = "127.0.0.1:50052"
    mode: str = "push"
    # Local mode: the number of worker processes the dispatcher runs itself.
    local_processes: int = os.cpu_count() or 1
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "faas:"
    heartbeat_seconds: float = 1.0
    # A worker that misses this many heartbeats in a row is dead.
    missed_heartbeats: int = 3
    # Attempts per task before a lost worker makes it FAILED.
    max_attempts: int = 3
    # Push mode: tasks a worker may hold beyond its processes.
    prefetch: int = 0
    # Run a task again (up to max_attempts) when its process dies, instead of failing it.
    retry_process_death: bool = False
    # How long a finished task and its result stay in Redis; 0 keeps them for good.
    result_ttl_seconds: float = 0.0
    # How often QUEUED tasks in Redis are compared with those the dispatcher holds.
    reconcile_seconds: float = 5.0
    # After a restart, how long RUNNING tasks wait for their worker to reconnect.
    recovery_grace_seconds: float = 5.0
    redis_timeout_seconds: float = 3.0
    # The most processes (push) or work-request slots (pull) one worker may claim.
    max_worker_capacity: int = 256
    # A worker stream whose hello does not come within this many seconds is closed.
    hello_timeout_seconds: float = 10.0
    # A worker holding a task past its timeout plus this grace loses the task.
    timeout_grace_seconds: float = 10.0
    # How often RUNNING tasks in Redis are checked for an attempt that no session holds.
    sweep_seconds: float = 5.0
    # Local mode: the largest serialized result a task may return.
    max_result_bytes: int = 16 * 1024 * 1024
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"
    log_json: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.local_processes < 1 or self.max_attempts < 1 or self.prefetch < 0:
            raise ValueError("processes and max_attempts must be >= 1, prefetch >= 0")

    @property
    def dead_after_seconds(self) -> float:
        return self.heartbeat_seconds * self.missed_heartbeats

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> DispatcherSettings:
        d = cls()
        return cls(
            address=environ.get("FAAS_DISPATCHER_ADDRESS", d.address),
            mode=environ.get("FAAS_DISPATCHER_MODE", d.mode),
            local_processes=int(environ.get("FAAS_WORKER_PROCESSES", d.local_processes)),
            redis_url=environ.get("REDIS_URL", d.redis_url),
            key_prefix=environ.get("FAAS_KEY_PREFIX", d.key_prefix),
            heartbeat_seconds=float(environ.get("FAAS_HEARTBEAT_SECONDS", d.heartbeat_seconds)),
            max_attempts=int(environ.get("FAAS_MAX_ATTEMPTS", d.max_attempts)),
            prefetch=int(environ.get("FAAS_PREFETCH", d.prefetch)),
            retry_process_death=environ.get("FAAS_RETRY_PROCESS_DEATH", "") in ("1", "true"),
            result_ttl_seconds=float(environ.get("FAAS_RESULT_TTL_SECONDS", d.result_ttl_seconds)),
            log_level=environ.get("FAAS_LOG_LEVEL", d.log_level),
            log_json=environ.get("FAAS_LOG_JSON", "") in ("1", "true"),
        )
