"""Entry point: ``python -m services.gateway.rest [--host H] [--port P] [--gateway TARGET]``.

Flags default to ``FAAS_REST_HOST``, ``FAAS_REST_PORT`` and ``FAAS_GATEWAY_TARGET``; the log
level comes from ``FAAS_LOG_LEVEL`` (default INFO). Uvicorn stops gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Sequence

import uvicorn

from services.gateway.rest.app import create_app
from services.gateway.rest.settings import RestSettings

logger = logging.getLogger(__name__)

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _parse_args(argv: Sequence[str] | None, defaults: RestSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="faas-rest", description="MPCSFaaS REST shim in front of the gateway."
    )
    parser.add_argument("--host", default=defaults.host, help="address to listen on")
    parser.add_argument("--port", type=int, default=defaults.port, help="port to listen on")
    parser.add_argument(
        "--gateway", default=defaults.gateway_target, help="gateway gRPC target host:port"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags and the environment, then serve the REST app until stopped."""
    env_settings = RestSettings.from_env(os.environ)
    args = _parse_args(argv, env_settings)
    settings = dataclasses.replace(
        env_settings, host=args.host, port=args.port, gateway_target=args.gateway
    )
    level = os.environ.get("FAAS_LOG_LEVEL", "INFO").strip().lower() or "info"
    if level not in _LOG_LEVELS:
        level = "info"
    logging.basicConfig(
        level=logging.DEBUG if level == "trace" else level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logger.info("REST shim listening on %s:%d", settings.host, settings.port)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="asyncio",
        log_level=level,
        timeout_graceful_shutdown=settings.shutdown_grace,
    )


if __name__ == "__main__":
    main()
