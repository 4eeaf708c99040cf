"""``python -m services.dispatcher -m push -p PORT [-w N]``: the dispatcher."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os

from services.common.logs import setup_logging

from .server import serve
from .settings import MODES, DispatcherSettings


def main(argv: list[str] | None = None) -> None:
    env = DispatcherSettings.from_env(os.environ)
    host, _, port = env.address.rpartition(":")
    parser = argparse.ArgumentParser(prog="faas-dispatcher", description=__doc__)
    parser.add_argument("-m", "--mode", choices=MODES, default=env.mode)
    parser.add_argument("-p", "--port", type=int, default=int(port), help="gRPC port (0: any free)")
    parser.add_argument("--host", default=host, help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "-w",
        "--workers",
        type=int,
        default=env.local_processes,
        help="local mode: number of worker processes",
    )
    parser.add_argument("--redis-url", default=env.redis_url)
    parser.add_argument("--heartbeat", type=float, default=env.heartbeat_seconds)
    parser.add_argument("--max-attempts", type=int, default=env.max_attempts)
    parser.add_argument("--prefetch", type=int, default=env.prefetch)
    parser.add_argument(
        "--retry-process-death",
        action="store_true",
        default=env.retry_process_death,
        help="run a task again when its process dies (os._exit, a signal, OOM) instead of failing",
    )
    parser.add_argument(
        "--result-ttl",
        type=float,
        default=env.result_ttl_seconds,
        help="seconds a finished task and its result stay in Redis (0: for good)",
    )
    args = parser.parse_args(argv)
    settings = dataclasses.replace(
        env,
        mode=args.mode,
        address=f"{args.host}:{args.port}",
        local_processes=args.workers,
        redis_url=args.redis_url,
        heartbeat_seconds=args.heartbeat,
        max_attempts=args.max_attempts,
        prefetch=args.prefetch,
        retry_process_death=args.retry_process_death,
        result_ttl_seconds=args.result_ttl,
    )
    setup_logging("dispatcher", settings.log_level, settings.log_json)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
