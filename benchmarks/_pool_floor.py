"""The floor: the same tasks on a bare ``multiprocessing.Pool`` in this process."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from . import _tasks
from ._stats import rate, summarize_ms


def measure(processes: int, tasks: int, round_trips: int, makespan_tasks: int) -> dict[str, Any]:
    """Throughput (one apply_async per task, and map), round trip and makespan on a Pool."""
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        pool.map(_tasks.noop, range(processes * 4))  # warm up every child

        started = time.perf_counter()
        pending = [pool.apply_async(_tasks.noop) for _ in range(tasks)]
        for item in pending:
            item.get(timeout=60)
        apply_seconds = time.perf_counter() - started

        started = time.perf_counter()
        pool.map(_tasks.noop, range(tasks))
        map_seconds = time.perf_counter() - started

        samples = []
        for _ in range(round_trips):
            started = time.perf_counter()
            pool.apply(_tasks.noop)
            samples.append(time.perf_counter() - started)

        started = time.perf_counter()
        pool.map(_tasks.sleep, [0.1] * makespan_tasks, chunksize=1)
        makespan_seconds = time.perf_counter() - started
    return {
        "processes": processes,
        "apply_async": {"tasks": tasks, "tasks_per_s": rate(tasks, apply_seconds)},
        "map": {"tasks": tasks, "tasks_per_s": rate(tasks, map_seconds)},
        "round_trip": summarize_ms(samples),
        "makespan": {"tasks": makespan_tasks, "seconds": makespan_seconds},
    }


def scaling_point(
    processes: int, noop_tasks: int, sleep_tasks: int, sleep: float
) -> dict[str, Any]:
    """One weak-scaling point on a Pool: no-op throughput and sleep-task wall time."""
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        pool.map(_tasks.noop, range(processes * 4))
        started = time.perf_counter()
        pending = [pool.apply_async(_tasks.noop) for _ in range(noop_tasks)]
        for item in pending:
            item.get(timeout=60)
        noop_seconds = time.perf_counter() - started
        started = time.perf_counter()
        pool.map(_tasks.sleep, [sleep] * sleep_tasks, chunksize=1)
        sleep_seconds = time.perf_counter() - started
    return {
        "noop": {"tasks": noop_tasks, "seconds": noop_seconds},
        "sleep": {"tasks": sleep_tasks, "seconds": sleep_seconds},
    }
