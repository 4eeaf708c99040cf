"""``python -m services.launcher`` (``faas up``, ``make run``): the whole platform, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from services.common.logs import setup_logging

from .platform import Platform, PlatformConfig


def main(argv: list[str] | None = None) -> None:
    env = os.environ
    d = PlatformConfig()
    parser = argparse.ArgumentParser(prog="faas up", description=__doc__)
    parser.add_argument(
        "-m",
        "--mode",
        choices=("local", "pull", "push"),
        default=env.get("FAAS_DISPATCHER_MODE", d.mode),
    )
    parser.add_argument(
        "-w",
        "--worker-processes",
        type=int,
        default=int(env.get("FAAS_WORKER_PROCESSES", d.worker_processes)),
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(env.get("FAAS_WORKERS", d.workers)),
        help="worker agents to start in pull/push mode",
    )
    parser.add_argument("--host", default=env.get("FAAS_HOST", d.host))
    parser.add_argument(
        "--gateway-port", type=int, default=int(env.get("FAAS_GATEWAY_PORT", d.gateway_port))
    )
    parser.add_argument(
        "--dispatcher-port",
        type=int,
        default=int(env.get("FAAS_DISPATCHER_PORT", d.dispatcher_port)),
    )
    parser.add_argument(
        "--rest-port", type=int, default=int(env.get("FAAS_REST_PORT", d.rest_port))
    )
    parser.add_argument(
        "--redis-url",
        default=env.get("REDIS_URL"),
        help="use this Redis instead of starting an embedded one",
    )
    parser.add_argument("--data-dir", type=Path, default=Path(env.get("FAAS_DATA_DIR", d.data_dir)))
    parser.add_argument(
        "--appendfsync",
        choices=("always", "everysec", "no"),
        default=env.get("FAAS_APPENDFSYNC", d.appendfsync),
    )
    args = parser.parse_args(argv)
    setup_logging("launcher", env.get("FAAS_LOG_LEVEL", "INFO"))
    config = PlatformConfig(
        mode=args.mode,
        worker_processes=args.worker_processes,
        workers=args.workers,
        host=args.host,
        gateway_port=args.gateway_port,
        dispatcher_port=args.dispatcher_port,
        rest_port=args.rest_port,
        redis_url=args.redis_url,
        data_dir=args.data_dir,
        appendfsync=args.appendfsync,
    )
    platform = Platform(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    platform.start()
    redis_note = "external" if config.redis_url else f"embedded, data in {config.data_dir}/redis"
    workers = (
        f"{config.worker_processes} local processes"
        if config.mode == "local"
        else f"{len(platform.workers)} worker(s) x {config.worker_processes} processes"
    )
    print(
        "MPCSFaaS is up:\n"
        f"  REST        {platform.rest_url}  (docs: {platform.rest_url}/docs)\n"
        f"  gateway     {platform.gateway_target}  (gRPC, reflection on)\n"
        f"  dispatcher  {platform.dispatcher_target}  ({config.mode} mode, {workers})\n"
        f"  redis       {platform.redis_url}  ({redis_note})\n"
        f"Add a worker: python -m services.worker N {platform.dispatcher_target}\n"
        "Ctrl-C stops everything.",
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            for service in (platform.dispatcher, platform.gateway, platform.rest):
                if not service.alive():
                    print(f"{service.name} exited; stopping", flush=True)
                    stop.set()
    finally:
        print("stopping...", flush=True)
        platform.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
