"""``python -m services.launcher`` (``faas up``, ``make run``): the whole platform, until Ctrl-C.

It supervises what it starts: a part that dies is restarted after 0.5 s, doubling to 10 s while
it keeps dying; a part that dies 5 times within 60 s stops the platform (exit code 1).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from services.common.logs import setup_logging
from services.common.pool import normalized_code_path
from services.common.settings import load

from .output import STDERR, STDOUT
from .platform import Platform
from .settings import LauncherSettings

PROG = "faas up"


def main(argv: list[str] | None = None) -> None:
    settings = load(LauncherSettings, argv, os.environ, prog=PROG, description=__doc__)
    setup_logging("launcher", settings.log_level, settings.log_json)
    config = settings.platform_config()
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
    redis_note = "external"
    if platform.redis is not None:
        redis_note = (
            f"embedded, data in {config.data_dir}/redis; password required, "
            f"users and passwords in {platform.redis.credentials_path}"
        )
    workers = (
        f"{config.worker_processes} local processes"
        if config.mode == "local"
        else f"{len(platform.workers)} worker(s) x {config.worker_processes} processes"
    )
    # Workers take FAAS_CODE_PATH from the environment they inherit, else their working directory.
    code_path = normalized_code_path(platform.env.get("FAAS_CODE_PATH", "").strip() or os.getcwd())
    grpc = "gRPC over TLS" if platform.ca is not None else "gRPC"
    STDOUT.say(
        "MPCSFaaS is up:\n"
        f"  REST        {platform.rest_url}  (docs: {platform.rest_url}/docs)\n"
        f"  dashboard   {platform.rest_url}/ui  (live: workers, queue, tasks, functions)\n"
        f"  gateway     {platform.gateway_target}  ({grpc}, reflection on)\n"
        f"  dispatcher  {platform.dispatcher_target}  ({config.mode} mode, {workers})\n"
        f"  redis       {platform.redis_address}  ({redis_note})\n"
        f"  code path   {code_path}  (workers import your modules from here: FAAS_CODE_PATH)\n"
        f"{_metrics_note(platform)}"
        f"{_tls_note(platform)}"
        f"{_keys_note(platform)}"
        f"{_add_a_worker(platform)}\n"
        "Ctrl-C stops everything."
    )


def _shown(path: Path) -> str:
    """``path`` as the banner shows it: relative when it is under the working directory."""
    here = os.getcwd() + os.sep
    return os.path.relpath(path) if str(path.absolute()).startswith(here) else str(path)


def _metrics_note(platform: Platform) -> str:
    """Where each part serves its Prometheus metrics (none with --metrics-port 0)."""
    if not platform.metrics_urls:
        return "  metrics     off (--metrics-port PORT serves them)\n"
    urls = platform.metrics_urls.items()
    heads = ["  metrics", *[""] * (len(urls) - 1)]
    return "".join(
        f"{head:<14}{url}  ({name})\n" for head, (name, url) in zip(heads, urls, strict=True)
    )


def _tls_note(platform: Platform) -> str:
    """With TLS, the CA clients must trust and how each kind of client is given it."""
    if platform.ca is None:
        return ""
    ca = _shown(platform.ca)
    return (
        f"  TLS         every hop; clients trust {ca}: FAAS_TLS_CA={ca} (faas, the SDK; or "
        f"--tls-ca), curl --cacert {ca}, grpcurl -cacert {ca}\n"
    )


def _keys_note(platform: Platform) -> str:
    """Whether clients need a key; with keys, how to call with one and how to make more."""
    if platform.api_keys is None:
        return (
            "  clients     open: no API key needed, every call is tenant default (keep it on "
            "loopback; --api-keys requires keys)\n"
        )
    path = platform.api_keys.path
    keys = os.path.relpath(path) if str(path).startswith(os.getcwd()) else str(path)
    issue = f"{_python()} -m faas keys --keys-file {keys} issue NAME --tenant TENANT"
    if platform.admin_key is None:
        return (
            f"  API keys    required, from {keys} (the key admin was printed at its first "
            f"start); another: {issue}\n"
        )
    key = platform.admin_key
    return (
        f"  API keys    required, from {keys}; key admin of tenant default (shown once):\n"
        f"                FAAS_API_KEY={key}  (faas, the SDK)\n"
        f'                curl -H "Authorization: Bearer {key}" {platform.rest_url}/workers\n'
        f"              another: {issue}\n"
    )


def _add_a_worker(platform: Platform) -> str:
    """How to add a worker by hand: enrolled first when the dispatcher admits enrolled ones."""
    worker = f"{_python()} -m services.worker N {platform.dispatcher_target}"
    if platform.ca is not None:
        worker += f" --tls-ca {_shown(platform.ca)}"
    if platform.tokens is None:
        return f"Add a worker: {worker}"
    return (
        f"Enroll a worker: {_python()} -m faas tokens --tokens-file {platform.tokens.path} "
        "issue ID  (prints its token)\n"
        f"Add a worker: FAAS_WORKER_TOKEN=TOKEN {worker}"
    )


if __name__ == "__main__":
    main()
