"""``python -m services.worker [--mode pull|push] N_PROCESSES DISPATCHER_URL``: a worker."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os

from services.common.grpc_server import stop_event_on_signals
from services.common.logs import setup_logging, worker_id_var

from .agent import ModeMismatch, Worker
from .settings import WorkerSettings


def _target(url: str) -> str:
    for scheme in ("grpc://", "tcp://", "http://"):
        url = url.removeprefix(scheme)
    return url.rstrip("/")


async def _main(settings: WorkerSettings) -> None:
    stop = stop_event_on_signals()
    await Worker(settings).run(stop)


def main(argv: list[str] | None = None) -> None:
    env = WorkerSettings.from_env(os.environ)
    parser = argparse.ArgumentParser(prog="faas-worker", description=__doc__)
    parser.add_argument("processes", type=int, nargs="?", default=env.processes)
    parser.add_argument(
        "dispatcher",
        nargs="?",
        default=env.dispatcher_target,
        help="dispatcher address, host:port (grpc:// or tcp:// prefix allowed)",
    )
    parser.add_argument(
        "--mode",
        choices=("pull", "push"),
        default=env.mode or None,
        help="insist on this dispatcher mode (default: follow the dispatcher)",
    )
    parser.add_argument("--worker-id", default=env.worker_id)
    parser.add_argument("--drain-grace", type=float, default=env.drain_grace_seconds)
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("N_PROCESSES must be at least 1")
    settings = dataclasses.replace(
        env,
        processes=args.processes,
        dispatcher_target=_target(args.dispatcher),
        mode=args.mode or "",
        worker_id=args.worker_id,
        drain_grace_seconds=args.drain_grace,
    )
    setup_logging("worker", settings.log_level, settings.log_json)
    worker_id_var.set(settings.worker_id)
    try:
        asyncio.run(_main(settings))
    except ModeMismatch as exc:
        logging.getLogger(__name__).error("%s", exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
