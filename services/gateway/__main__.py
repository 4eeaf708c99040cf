"""``python -m services.gateway``: the gRPC gateway."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os

from services.common.logs import setup_logging

from .server import serve
from .settings import GatewaySettings


def main(argv: list[str] | None = None) -> None:
    env = GatewaySettings.from_env(os.environ)
    parser = argparse.ArgumentParser(prog="faas-gateway", description=__doc__)
    parser.add_argument("--address", default=env.address, help="gRPC listen address (host:port)")
    parser.add_argument("--dispatcher", default=env.dispatcher_target, help="dispatcher host:port")
    parser.add_argument("--redis-url", default=env.redis_url)
    parser.add_argument("--max-payload-bytes", type=int, default=env.max_payload_bytes)
    args = parser.parse_args(argv)
    settings = dataclasses.replace(
        env,
        address=args.address,
        dispatcher_target=args.dispatcher,
        redis_url=args.redis_url,
        max_payload_bytes=args.max_payload_bytes,
    )
    setup_logging("gateway", settings.log_level, settings.log_json)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
