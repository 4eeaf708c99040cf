"""CPU time of the service processes (and their children) over a measurement, from /proc.

Dividing each service's CPU seconds by the tasks run gives its CPU cost per task, which on a
2-core machine says which process saturates first and where a microsecond saved matters. The
kernel's share (system time) shows how much goes to moving small messages between processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ._memory import descendants

T = TypeVar("T")

_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> tuple[float, float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS  # utime, stime


def tree_cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` and its live descendants."""
    times = [_process_cpu(p) for p in [pid, *descendants(pid)]]
    return sum(u for u, _ in times), sum(s for _, s in times)


def snapshot(pids: dict[str, int]) -> dict[str, tuple[float, float]]:
    out = {name: tree_cpu(pid) for name, pid in pids.items()}
    own = os.times()
    out["client"] = (own.user, own.system)
    out["wall"] = (time.perf_counter(), 0.0)
    return out


def measured(pids: dict[str, int], run: Callable[[], T]) -> tuple[T, dict[str, Any]]:
    """Runs ``run`` and returns its result with each process's CPU seconds and share of a core."""
    before = snapshot(pids)
    result = run()
    after = snapshot(pids)
    wall = after["wall"][0] - before["wall"][0]
    names = [name for name in before if name != "wall"]
    user = {name: after[name][0] - before[name][0] for name in names}
    system = {name: after[name][1] - before[name][1] for name in names}
    seconds = {name: user[name] + system[name] for name in names}
    return result, {
        "wall_seconds": wall,
        "cpu_seconds": seconds,
        "system_share": {n: system[n] / seconds[n] for n in names if seconds[n] > 0},
        "core_share": {name: s / wall for name, s in seconds.items()} if wall > 0 else {},
    }


def per_task_us(cpu: dict[str, Any], tasks: int) -> dict[str, float]:
    """CPU microseconds per task of each process."""
    if tasks <= 0:
        return {}
    return {name: s / tasks * 1e6 for name, s in cpu["cpu_seconds"].items()}


def total_ms_per_task(cpu: dict[str, Any], tasks: int) -> float:
    """CPU milliseconds per task summed over every measured process and the client."""
    if tasks <= 0:
        return float("nan")
    return float(sum(cpu["cpu_seconds"].values())) / tasks * 1000.0
