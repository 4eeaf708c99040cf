"""``python -m services.gateway [--address HOST:PORT] [--dispatcher HOST:PORT]``: the gateway.

Every setting is a flag and an environment variable (``--help`` lists them); flags win.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence

from services.common import grpc_server
from services.common.hardening import make_non_dumpable
from services.common.logs import setup_logging
from services.common.settings import load

from .server import serve
from .settings import GatewaySettings


def main(argv: Sequence[str] | None = None) -> None:
    make_non_dumpable()  # no same-user process (user code) reads our environment or memory
    settings = load(GatewaySettings, argv, os.environ, prog="faas-gateway", description=__doc__)
    setup_logging("gateway", settings.log_level, settings.log_json)
    try:
        asyncio.run(serve(settings))
    except grpc_server.PortInUse as exc:  # one line, not a traceback
        logging.getLogger(__name__).error("%s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
