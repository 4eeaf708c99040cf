"""Typed settings of the REST shim."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RestSettings"]


@dataclass(frozen=True, slots=True)
class RestSettings:
    """Where the shim listens, which gateway it talks to, and how long it waits for it.

    ``call_timeout`` bounds every gRPC call (seconds); a long poll on ``/result`` may add up to
    ``max_wait`` seconds on top. ``shutdown_grace`` bounds how many seconds in-flight requests
    may still run after SIGTERM.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    gateway_target: str = "127.0.0.1:50051"
    call_timeout: float = 10.0
    max_wait: float = 60.0
    shutdown_grace: int = 5

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if not self.gateway_target:
            raise ValueError("gateway_target must not be empty")
        if not self.call_timeout > 0:
            raise ValueError(f"call_timeout must be > 0, got {self.call_timeout}")
        if not self.max_wait >= 0:
            raise ValueError(f"max_wait must be >= 0, got {self.max_wait}")
        if not self.shutdown_grace >= 0:
            raise ValueError(f"shutdown_grace must be >= 0, got {self.shutdown_grace}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RestSettings:
        """Build settings from ``FAAS_REST_HOST``, ``FAAS_REST_PORT`` and ``FAAS_GATEWAY_TARGET``.

        Unset or empty variables keep the defaults. Raises ``ValueError`` on a bad port.
        """
        defaults = cls()
        port_text = environ.get("FAAS_REST_PORT", "").strip()
        try:
            port = int(port_text) if port_text else defaults.port
        except ValueError:
            raise ValueError(f"FAAS_REST_PORT must be an integer, got {port_text!r}") from None
        return cls(
            host=environ.get("FAAS_REST_HOST", "").strip() or defaults.host,
            port=port,
            gateway_target=environ.get("FAAS_GATEWAY_TARGET", "").strip()
            or defaults.gateway_target,
        )
