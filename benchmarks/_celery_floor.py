"""The comparison: Celery (prefork, Redis broker and backend) on the same tasks and machine.

It runs only when celery is importable (the ``bench`` extra); otherwise it is skipped with a
note. The broker is its own redis-server, the same binary the platform embeds.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from services.launcher.redis_server import RedisServer

from . import _cpu, _memory, _processes
from ._stats import median, rate, summarize_ms


def available() -> str | None:
    """None when Celery can run, else why not."""
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        return f"skipped: {exc.name} is not installed (pip install -e '.[bench]')"
    return None


def measure(
    processes: int,
    tasks: int,
    round_trips: int,
    makespan_tasks: int,
    log_dir: Path,
    repetitions: int = 1,
) -> dict[str, Any]:
    """Throughput (median of ``repetitions``), round trip, makespan, CPU per task and memory.

    The CPU per task sums the worker (with its prefork children), its redis-server and this
    process, the client, as the platform's figure sums every service and the client.
    """
    from ._celery_app import app, noop, sleep

    data_dir = Path(tempfile.mkdtemp(prefix="faas-bench-celery-"))
    redis = RedisServer(data_dir, appendfsync="everysec")
    redis.start()
    app.conf.broker_url = redis.url
    app.conf.result_backend = redis.url
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "benchmarks._celery_app",
        "worker",
        "-c",
        str(processes),
        "-P",
        "prefork",
        "-Q",
        "bench",
        "-l",
        "WARNING",
        "-n",
        "bench@127.0.0.1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]

    def ready() -> bool:
        try:
            noop.delay().get(timeout=1.0)
        except Exception:
            return False
        return True

    try:
        with _processes.started(
            argv,
            log_dir / "celery-worker.log",
            ready,
            env={"BENCH_CELERY_REDIS_URL": redis.url},
        ) as worker:
            idle = _memory.tree_memory(worker.pid)
            pids = {"worker": worker.pid, "redis": redis.pid}
            result = _run(noop, sleep, tasks, round_trips, makespan_tasks, repetitions, pids)
            result["memory"] = {"idle": idle, "after": _memory.tree_memory(worker.pid)}
            result["processes"] = processes
            return result
    finally:
        app.pool.force_close_all()
        redis.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _run(
    noop: Any,
    sleep: Any,
    tasks: int,
    round_trips: int,
    makespan_tasks: int,
    repetitions: int,
    pids: dict[str, int],
) -> dict[str, Any]:
    for _ in range(20):  # warm up both children
        noop.delay().get(timeout=10)

    runs = []
    for _ in range(max(1, repetitions)):
        run, cpu = _cpu.measured(pids, lambda: _throughput(noop, tasks))
        run["cpu"] = cpu
        run["cpu_ms_per_task"] = _cpu.total_ms_per_task(cpu, run["completed"])
        runs.append(run)

    samples = []
    for _ in range(round_trips):
        began = time.perf_counter()
        noop.delay().get(timeout=10)
        samples.append(time.perf_counter() - began)

    began = time.perf_counter()
    sleeps = [sleep.delay(0.1) for _ in range(makespan_tasks)]
    for item in sleeps:
        item.get(timeout=60)
    makespan_seconds = time.perf_counter() - began
    return {
        "throughput": {
            "runs": runs,
            "tasks": tasks,
            "completed": min(r["completed"] for r in runs),
            "tasks_per_s": median([r["tasks_per_s"] for r in runs]),
            "cpu_ms_per_task": median([r["cpu_ms_per_task"] for r in runs]),
        },
        "round_trip": summarize_ms(samples),
        "makespan": {"tasks": makespan_tasks, "seconds": makespan_seconds},
    }


def _throughput(noop: Any, tasks: int) -> dict[str, Any]:
    """``delay()`` x ``tasks``, then ``get()`` of each: one repetition."""
    started = time.perf_counter()
    pending = [noop.delay() for _ in range(tasks)]
    submitted = time.perf_counter()
    completed = 0
    deadline = time.monotonic() + 120
    for item in pending:
        try:
            item.get(timeout=max(0.1, deadline - time.monotonic()))
            completed += 1
        except Exception:
            break
    seconds = time.perf_counter() - started
    return {
        "tasks": tasks,
        "completed": completed,
        "seconds": seconds,
        "submit_seconds": submitted - started,
        "tasks_per_s": rate(completed, seconds),
    }
