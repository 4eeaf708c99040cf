"""The Ray comparison: the same no-op and sleep tasks on a local Ray node with 2 CPUs.

``measure`` runs ``python -m benchmarks._ray_floor`` in a process of its own, so that Ray's
driver, threads and memory stay out of the suite's process (and its CPU accounting). The child
starts Ray with ``num_cpus=2`` (so two worker processes take no-op tasks, as the platform's
two), no dashboard, a small object store and usage statistics off, then measures, per
repetition, ``f.remote()`` x N followed by one ``ray.get`` of them all; the round trip
``ray.get(f.remote())`` one at a time; 40 x ``sleep(0.1)``; the CPU per task of the driver
and every Ray process (gcs_server, raylet, workers, agents) together; and Ray's idle memory.
It writes its results as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _processes
from ._stats import median, rate, summarize_ms

# Ray's own processes read these: no usage reports, no token prompt, quiet logs.
_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DISABLE_IMPORT_WARNING": "1",
    "RAY_DEDUP_LOGS": "0",
}
_OBJECT_STORE_BYTES = 96 * 1024 * 1024


def available() -> str | None:
    """None when Ray can run, else why not (ray is not imported here)."""
    if importlib.util.find_spec("ray") is None:
        return "skipped: ray is not installed (pip install -e '.[bench]')"
    return None


def _in_private_network(argv: list[str]) -> list[str]:
    """``argv`` run in a network namespace of its own, with only a loopback interface.

    Ray binds its servers to every interface whatever it is told; inside the namespace every
    interface is loopback, so the bench keeps its rule that servers listen on 127.0.0.1 only.
    """
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    if unshare is None or not os.path.exists(ip):
        raise RuntimeError("the Ray floor needs unshare and ip (util-linux, iproute2)")
    return [unshare, "-rn", "sh", "-c", f'{ip} link set lo up && exec "$@"', "sh", *argv]


def measure(
    processes: int,
    tasks: int,
    repetitions: int,
    round_trips: int,
    makespan_tasks: int,
    log_dir: Path,
    limit_seconds: float = 300.0,
) -> dict[str, Any]:
    """Ray's figures on the same workload, from a child process (bounded by ``limit_seconds``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_file = log_dir / "ray-floor.json"
    argv = [
        sys.executable,
        "-m",
        "benchmarks._ray_floor",
        "--processes",
        str(processes),
        "--tasks",
        str(tasks),
        "--repetitions",
        str(repetitions),
        "--round-trips",
        str(round_trips),
        "--makespan-tasks",
        str(makespan_tasks),
        "--out",
        str(out_file),
    ]
    env = {**os.environ, **_RAY_ENV}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_processes.REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    with open(log_dir / "ray-floor.log", "ab") as log:
        done = subprocess.run(
            _in_private_network(argv),
            cwd=_processes.REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            timeout=limit_seconds,
            check=False,
        )
    if done.returncode != 0 or not out_file.exists():
        log_path = log_dir / "ray-floor.log"
        raise RuntimeError(f"the Ray run exited with {done.returncode}; see {log_path}")
    result: dict[str, Any] = json.loads(out_file.read_text())
    return result


# --- the child process -----------------------------------------------------------------------


def _tree_cpu_seconds() -> float:
    from ._cpu import tree_cpu

    user, system = tree_cpu(os.getpid())
    return user + system


def _run(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from ._memory import tree_memory

    @ray.remote
    def noop(*_args: Any) -> None:
        return None

    @ray.remote
    def sleep(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    temp_dir = tempfile.mkdtemp(prefix="rb-", dir="/tmp")  # short: Ray's socket paths
    started = time.perf_counter()
    ray.init(
        num_cpus=args.processes,
        include_dashboard=False,
        object_store_memory=_OBJECT_STORE_BYTES,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=temp_dir,
    )
    try:
        start_seconds = time.perf_counter() - started
        ray.get([noop.remote() for _ in range(20 * args.processes)], timeout=60)
        time.sleep(1.0)  # let the node settle before reading its idle memory
        tree = tree_memory(os.getpid())
        idle_nodes = [p for p in tree["processes"] if p["pid"] != os.getpid()]
        runs = []
        for _ in range(args.repetitions):
            cpu_before = _tree_cpu_seconds()
            began = time.perf_counter()
            refs = [noop.remote() for _ in range(args.tasks)]
            submitted = time.perf_counter()
            ray.get(refs, timeout=120)
            seconds = time.perf_counter() - began
            cpu = _tree_cpu_seconds() - cpu_before
            runs.append(
                {
                    "tasks": args.tasks,
                    "completed": args.tasks,
                    "seconds": seconds,
                    "submit_seconds": submitted - began,
                    "tasks_per_s": rate(args.tasks, seconds),
                    "cpu_ms_per_task": cpu / args.tasks * 1000.0,
                }
            )
        samples = []
        for _ in range(args.round_trips):
            began = time.perf_counter()
            ray.get(noop.remote(), timeout=10)
            samples.append(time.perf_counter() - began)
        began = time.perf_counter()
        ray.get([sleep.remote(0.1) for _ in range(args.makespan_tasks)], timeout=60)
        makespan = time.perf_counter() - began
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    return {
        "version": ray.__version__,
        "processes": args.processes,
        "start_seconds": start_seconds,
        "throughput": {
            "runs": runs,
            "tasks_per_s": median([r["tasks_per_s"] for r in runs]),
            "cpu_ms_per_task": median([r["cpu_ms_per_task"] for r in runs]),
        },
        "round_trip": summarize_ms(samples),
        "makespan": {"tasks": args.makespan_tasks, "seconds": makespan},
        "memory": {
            "idle": {
                "rss_mib": sum(p["rss_mib"] for p in idle_nodes),
                "pss_mib": sum(p["pss_mib"] for p in idle_nodes),
                "processes": idle_nodes,
            },
            "driver_rss_mib": next(
                (p["rss_mib"] for p in tree["processes"] if p["pid"] == os.getpid()), None
            ),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._ray_floor")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--makespan-tasks", type=int, default=40)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.update(_RAY_ENV)
    result = _run(args)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
