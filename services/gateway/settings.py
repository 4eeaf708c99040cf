"""The gateway's settings: one frozen value, built from the environment at the entry point."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    address: str = "127.0.0.1:50051"
    dispatcher_target: str = "127.0.0.1:50052"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "faas:"
    max_payload_bytes: int = 16 * 1024 * 1024
    # Upper bound of a GetResult long poll.
    max_wait_seconds: float = 60.0
    # How often a waiter re-reads Redis, as a safety net behind the dispatcher's events.
    recheck_seconds: float = 2.0
    redis_timeout_seconds: float = 3.0
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"
    log_json: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> GatewaySettings:
        d = cls()
        return cls(
            address=environ.get("FAAS_GATEWAY_ADDRESS", d.address),
            dispatcher_target=environ.get("FAAS_DISPATCHER_TARGET", d.dispatcher_target),
            redis_url=environ.get("REDIS_URL", d.redis_url),
            key_prefix=environ.get("FAAS_KEY_PREFIX", d.key_prefix),
            max_payload_bytes=int(environ.get("FAAS_MAX_PAYLOAD_BYTES", d.max_payload_bytes)),
            max_wait_seconds=float(environ.get("FAAS_MAX_WAIT_SECONDS", d.max_wait_seconds)),
            log_level=environ.get("FAAS_LOG_LEVEL", d.log_level),
            log_json=environ.get("FAAS_LOG_JSON", "") in ("1", "true"),
        )
