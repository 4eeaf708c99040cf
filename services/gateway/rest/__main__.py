"""Entry point: ``python -m services.gateway.rest [--host H] [--port P] [--gateway TARGET]``.

Flags default to ``FAAS_REST_HOST``, ``FAAS_REST_PORT`` and ``FAAS_GATEWAY_TARGET``; the log
level comes from ``FAAS_LOG_LEVEL`` (default INFO). Uvicorn stops gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Iterator, Sequence

import uvicorn

from services.common.logs import setup_logging
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
    setup_logging(
        "rest",
        "DEBUG" if level == "trace" else level.upper(),
        os.environ.get("FAAS_LOG_JSON", "") in ("1", "true"),
    )
    logger.info("REST shim listening on %s:%d", settings.host, settings.port)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="asyncio",
        http="httptools",
        log_level=level,
        access_log=False,
        log_config=None,  # uvicorn logs through the root handler set up above
        timeout_graceful_shutdown=settings.shutdown_grace,
    )
    _GracefulServer(config).run()


class _GracefulServer(uvicorn.Server):
    """A uvicorn server whose graceful stop on SIGTERM/SIGINT ends the process with code 0.

    uvicorn re-raises a captured signal after its graceful shutdown, which makes the process
    exit with -SIGTERM; a graceful stop is a success, so the signals only ask for the exit here.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def ask_exit(sig: int, frame: object) -> None:
            self.force_exit = self.should_exit and sig == signal.SIGINT
            self.should_exit = True

        previous = {sig: signal.signal(sig, ask_exit) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


if __name__ == "__main__":
    main()
