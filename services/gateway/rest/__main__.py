"""``python -m services.gateway.rest [--host H] [--port P] [--gateway TARGET]``: the REST shim.

Every setting is a flag and an environment variable (``--help`` lists them: ``FAAS_REST_HOST``,
``FAAS_REST_PORT``, ``FAAS_GATEWAY_TARGET``, ``FAAS_LOG_LEVEL``, ...); flags win. Uvicorn stops
gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator, Sequence

import uvicorn
from fastapi import FastAPI

from services.common.grpc_server import PortInUse, check_port_free
from services.common.hardening import make_non_dumpable
from services.common.logs import setup_logging
from services.common.settings import load
from services.gateway.rest._client import GatewayClient
from services.gateway.rest._shutdown import CutShortAs503
from services.gateway.rest.app import create_app
from services.gateway.rest.settings import RestSettings

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags and the environment, then serve the REST app until stopped."""
    make_non_dumpable()  # no same-user process (user code) reads our environment or memory
    settings = load(
        RestSettings,
        argv,
        os.environ,
        prog="faas-rest",
        description="MPCSFaaS REST shim in front of the gateway.",
    )
    level = settings.log_level
    setup_logging("rest", "DEBUG" if level == "TRACE" else level, settings.log_json)
    try:
        check_port_free(settings.host, settings.port)
    except PortInUse as exc:  # one line before anything starts, not uvicorn's late exit 3
        logger.error("%s", exc)
        raise SystemExit(1) from None
    scheme = "https" if settings.tls_cert is not None else "http"
    logger.info("REST shim listening on %s://%s:%d", scheme, settings.host, settings.port)
    app = create_app(settings)
    config = uvicorn.Config(
        CutShortAs503(app),
        host=settings.host,
        port=settings.port,
        loop="asyncio",
        http="httptools",
        log_level=level.lower(),
        access_log=False,
        log_config=None,  # uvicorn logs through the root handler set up above
        timeout_graceful_shutdown=settings.shutdown_grace,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )
    _GracefulServer(config, app).run()


class _GracefulServer(uvicorn.Server):
    """A uvicorn server whose graceful stop on SIGTERM/SIGINT ends the process with code 0.

    uvicorn re-raises a captured signal after its graceful shutdown, which makes the process
    exit with -SIGTERM; a graceful stop is a success, so the signals only ask for the exit here.
    Long polls in flight end as the stop begins, answering the task's state, rather than holding
    the stop for the whole grace period.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        client = getattr(self._app.state, "gateway", None)
        if isinstance(client, GatewayClient):
            client.stop_waiting()
        await super().shutdown(sockets)

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
