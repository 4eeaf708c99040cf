"""The weak-scaling study: 1, 2, 4, 8 worker processes with work in proportion, per mode.

At each point the platform runs ``noop_per_process * P`` no-op tasks (submitted in batches, so
the figure is the platform's, not the client's) and ``sleep_per_process * P`` sleep tasks, whose
ideal wall time is the same at every P. A bare multiprocessing.Pool(P) runs the same work.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from . import _grpc_load, _logs, _memory, _platform, _pool_floor, _tasks
from ._progress import Progress
from ._sizes import Sizes


def measure(
    modes: list[str],
    sizes: Sizes,
    log_dir: Path,
    log_level: str,
    progress: Progress,
    env: dict[str, str] | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """The study; a point not started by ``deadline`` (``time.monotonic()``) is skipped."""
    ideal = sizes.scaling_sleep_per_process * sizes.scaling_sleep
    out: dict[str, Any] = {
        "processes": list(sizes.scaling_processes),
        "noop_per_process": sizes.scaling_noop_per_process,
        "sleep_per_process": sizes.scaling_sleep_per_process,
        "sleep_seconds": sizes.scaling_sleep,
        "ideal_sleep_seconds": ideal,
        "pool": {},
        "modes": {},
    }
    for p in sizes.scaling_processes:
        point = _pool_floor.scaling_point(
            p,
            sizes.scaling_noop_per_process * p,
            sizes.scaling_sleep_per_process * p,
            sizes.scaling_sleep,
        )
        out["pool"][str(p)] = _derive(point, ideal)
    progress.say("scaling: multiprocessing.Pool done")
    for mode in modes:
        points: dict[str, Any] = {}
        for p in sizes.scaling_processes:
            if deadline is not None and time.monotonic() > deadline:
                points[str(p)] = {"error": "skipped: the run's time budget was spent"}
                progress.say(f"scaling: {mode} P={p}: skipped (time budget)")
                continue
            try:
                points[str(p)] = _point(
                    mode, p, sizes, log_dir / f"{mode}-{p}", log_level, ideal, env
                )
            except Exception as exc:  # one broken point must not lose the others
                points[str(p)] = {"error": f"{type(exc).__name__}: {exc}"}
            progress.say(f"scaling: {mode} P={p}: {_describe(points[str(p)])}")
        out["modes"][mode] = points
    return out


def _point(
    mode: str,
    p: int,
    sizes: Sizes,
    log_dir: Path,
    log_level: str,
    ideal: float,
    env: dict[str, str] | None,
) -> dict[str, Any]:
    with _platform.running(mode, p, log_dir, log_level, env) as target:
        functions = _platform.register_all(target.gateway)
        asyncio.run(_grpc_load.warm_up(target.gateway, functions.noop, _tasks.NOOP_ARGS, 4 * p))
        idle = _memory.services_memory(target.pids)
        noop = asyncio.run(
            _grpc_load.throughput(
                target.gateway,
                functions.noop,
                _tasks.NOOP_ARGS,
                sizes.scaling_noop_per_process * p,
                batch=sizes.batch,
            )
        )
        sleep = asyncio.run(
            _grpc_load.makespan(
                target.gateway,
                functions.sleep,
                _tasks.sleep_args(sizes.scaling_sleep),
                sizes.scaling_sleep_per_process * p,
            )
        )
    point = _derive({"noop": noop, "sleep": sleep}, ideal)
    point["start_seconds"] = target.start_seconds
    point["idle_rss_mib"] = {name: tree["rss_mib"] for name, tree in idle.items()}
    point["lost"] = noop["lost"] + sleep["tasks"] - sleep["completed"]
    point["retried"] = sum(noop["retried"].values()) + sum(sleep["retried"].values())
    point["log_findings"] = _logs.scan(log_dir)
    return point


def _derive(point: dict[str, Any], ideal: float) -> dict[str, Any]:
    noop, sleep = point["noop"], point["sleep"]
    noop["tasks_per_s"] = noop["tasks"] / noop["seconds"]
    sleep["efficiency"] = ideal / sleep["seconds"]
    return point


def _describe(point: dict[str, Any]) -> str:
    if "error" in point:
        return f"ERROR {point['error']}"
    return (
        f"no-op {point['noop']['tasks_per_s']:,.0f} tasks/s, "
        f"sleep {point['sleep']['seconds']:.3f}s (efficiency {point['sleep']['efficiency']:.2f})"
        + (f", LOST {point['lost']}" if point.get("lost") else "")
        + (f", {point['retried']} GetResult retries" if point.get("retried") else "")
    )
