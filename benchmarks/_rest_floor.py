"""Runs the REST load against the bare FastAPI floor app, in a process of its own."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from services.launcher.redis_server import free_port

from . import _memory, _processes, _rest_load, _tasks


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1.0) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def _floor_app(log_dir: Path, log_level: str) -> Iterator[tuple[str, int]]:
    """The floor app on a free port, stopped on exit: its URL and PID."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable,
        "-m",
        "benchmarks._fastapi_floor",
        "--port",
        str(port),
        "--log-level",
        log_level.lower(),
    ]
    with _processes.started(argv, log_dir / "fastapi-floor.log", lambda: _healthy(url)) as app:
        yield url, app.pid


def measure(sizes: Any, log_dir: Path, log_level: str) -> dict[str, Any]:
    """16-client throughput, batch throughput and one client's round trip on the floor app."""
    payload = _tasks.rest_encode(_tasks.NOOP_ARGS)
    with _floor_app(log_dir, log_level) as (url, pid):
        idle = _memory.tree_memory(pid)
        round_trip = asyncio.run(
            _rest_load.round_trips(url, "floor", payload, sizes.rest_round_trips)
        )
        clients = asyncio.run(
            _rest_load.clients_throughput(url, "floor", payload, sizes.rest_tasks, clients=16)
        )
        batch = asyncio.run(
            _rest_load.batch_throughput(url, "floor", payload, sizes.rest_batch_tasks, clients=16)
        )
        peak = _memory.tree_memory(pid)
    return {
        "round_trip": round_trip,
        "clients": clients,
        "batch": batch,
        "memory": {"idle": idle, "peak": peak},
    }


def beside(sizes: Any, log_dir: Path, log_level: str) -> dict[str, Any]:
    """The floor's 16-client throughput and round trip again, run just before a mode's REST
    load, so that the ratio compares two figures taken under the same load on the machine."""
    payload = _tasks.rest_encode(_tasks.NOOP_ARGS)
    with _floor_app(log_dir, log_level) as (url, _):
        round_trip = asyncio.run(
            _rest_load.round_trips(url, "floor", payload, sizes.rest_round_trips)
        )
        clients = asyncio.run(
            _rest_load.clients_throughput(
                url, "floor", payload, sizes.rest_tasks, clients=sizes.rest_clients
            )
        )
    return {"round_trip": round_trip, "clients": clients}
