"""``python -m benchmarks.profiling``: where the services spend their time under load.

Starts the platform in one mode, attaches ``py-spy record`` to the gateway, dispatcher, worker and
REST shim (by the PIDs it started), runs one load for a fixed time, then writes each process's
raw stacks, a Markdown summary (top functions by self and total time, self time by package) and
each process's CPU use per task. With ``--profiler pyinstrument`` the services are started under
``python -m pyinstrument`` instead, and write their reports when they stop.

Loads: ``grpc`` (one-call submits, then results), ``grpc-batch`` (ExecuteBatch), ``rest`` (16
clients, execute then long-poll), ``latency`` (one gRPC client, one task at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from services.launcher.platform import Platform, PlatformConfig, ServiceProcess

from . import _cpu, _grpc_load, _platform, _redis_stats, _rest_load, _stacks, _tasks
from ._processes import REPO_ROOT
from ._progress import Progress

LOADS = ("grpc", "grpc-batch", "rest", "latency")
_PROFILED = ("gateway", "dispatcher", "worker", "rest")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__)
    parser.add_argument("--mode", default="push", choices=("local", "pull", "push"))
    parser.add_argument("--load", default="grpc", choices=LOADS)
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the load runs")
    parser.add_argument("--profiler", default="py-spy", choices=("py-spy", "pyinstrument"))
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy: include C frames")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the services, e.g. FAAS_PREFETCH=64 (repeatable)",
    )
    parser.add_argument(
        "--count",
        action="store_true",
        help="run gateway, dispatcher and worker under benchmarks._counting (batch sizes)",
    )
    parser.add_argument(
        "--out", type=Path, help="default benchmarks/results/profile-<mode>-<load>-<time>"
    )
    args = parser.parse_args(argv)
    if args.count and args.profiler == "pyinstrument":
        parser.error("--count works with py-spy only")
    return args


def _load_round(target: _platform.Target, functions: _platform.Functions, load: str) -> int:
    """One bounded round of the load; returns how many tasks completed."""
    args = _tasks.NOOP_ARGS
    if load == "grpc":
        result = asyncio.run(_grpc_load.throughput(target.gateway, functions.noop, args, 2000))
    elif load == "grpc-batch":
        result = asyncio.run(
            _grpc_load.throughput(target.gateway, functions.noop, args, 2000, batch=500)
        )
    elif load == "rest":
        result = asyncio.run(
            _rest_load.clients_throughput(
                target.rest_url, functions.noop, _tasks.rest_encode(args), 800
            )
        )
    else:
        result = asyncio.run(
            _grpc_load.round_trips(
                target.gateway, functions.noop, args, 300, via="get_result", warmup=0
            )
        )
        return int(result.get("n", 0))
    return int(result["completed"])


def _run_load(
    target: _platform.Target, functions: _platform.Functions, load: str, seconds: float
) -> int:
    """Rounds of the load until ``seconds`` pass (at most 200 rounds)."""
    done = 0
    deadline = time.monotonic() + seconds
    for _ in range(200):
        if time.monotonic() >= deadline:
            break
        done += _load_round(target, functions, load)
    return done


def _py_spy(
    pid: int, out: Path, args: argparse.Namespace, children: bool
) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(args.rate),
        "--duration",
        str(int(args.seconds) + 1),
        "--format",
        "raw",
        "--output",
        str(out),
    ]
    if not args.native:
        argv.append("--nonblocking")  # native stacks need the process paused while sampled
    if children:
        argv.append("--subprocesses")
    if args.native:
        argv.append("--native")
    log = open(out.with_suffix(".py-spy.log"), "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)


def _under_counting(service: ServiceProcess, out: Path) -> None:
    """Rewrites a service's argv to run it under benchmarks._counting."""
    argv = service.argv
    module_at = argv.index("-m")
    service.argv = [argv[0], "-m", "benchmarks._counting", *argv[module_at + 1 :]]
    service.env = {
        **service.env,
        "BENCH_COUNTS_DIR": str(out),
        "PYTHONPATH": str(REPO_ROOT),
    }


def _start(platform: Platform, args: argparse.Namespace, out: Path) -> None:
    """Platform.start, step by step, so that the worker's argv can be rewritten too."""
    if platform.redis is not None:
        platform.redis.start()
    for service in (platform.dispatcher, platform.gateway, platform.rest):
        if args.count and service.name != "rest":
            _under_counting(service, out)
        service.start()
    if args.mode != "local":
        worker = platform.new_worker()
        if args.count:
            _under_counting(worker, out)
        worker.start()


def _under_pyinstrument(platform: Platform, out: Path) -> None:
    """Rewrites each service's argv to run it under pyinstrument, writing a text report."""
    services = [platform.gateway, platform.dispatcher, platform.rest]
    for service in services:
        argv = service.argv
        module_at = argv.index("-m")
        report = out / f"{service.name}.pyinstrument.txt"
        service.argv = [
            argv[0],
            "-m",
            "pyinstrument",
            "--renderer",
            "text",
            "-o",
            str(report),
            *argv[module_at:],
        ]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out: Path = (
        args.out
        or Path(__file__).resolve().parent / "results" / f"profile-{args.mode}-{args.load}-{stamp}"
    )
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress()
    config = PlatformConfig(
        mode=args.mode,
        worker_processes=2,
        gateway_port=0,
        dispatcher_port=0,
        rest_port=0,
        data_dir=out / "data",
        log_dir=out / "logs",
        extra_env=dict(item.split("=", 1) for item in args.env),
    )
    platform = Platform(config)
    if args.profiler == "pyinstrument":
        _under_pyinstrument(platform, out)
    summary: dict[str, Any] = {
        "mode": args.mode,
        "load": args.load,
        "profiler": args.profiler,
        "env": args.env,
    }
    try:
        _start(platform, args, out)
        pids = {
            "gateway": platform.gateway.pid,
            "dispatcher": platform.dispatcher.pid,
            "rest": platform.rest.pid,
        }
        if platform.workers:
            pids["worker"] = platform.workers[0].pid
        if platform.redis is not None and platform.redis.process is not None:
            pids["redis"] = platform.redis.process.pid
        target = _platform.Target(
            args.mode, 2, platform.gateway_target, platform.rest_url, pids, out / "logs", 0.0
        )
        functions = _platform.register_all(target.gateway)
        asyncio.run(_grpc_load.warm_up(target.gateway, functions.noop, _tasks.NOOP_ARGS))
        spies = {}
        if args.profiler == "py-spy":
            for name in _PROFILED:
                if name in pids:
                    children = name == "worker" or (name == "dispatcher" and args.mode == "local")
                    spies[name] = _py_spy(pids[name], out / f"{name}.raw.txt", args, children)
            time.sleep(1.0)  # py-spy attaches before the load starts
        profiled = list(spies) or "all"
        progress.say(f"{args.mode}/{args.load}: load for {args.seconds:.0f}s, profiling {profiled}")
        redis_before = _redis_stats.commandstats(platform.redis_url)
        tasks, cpu = _cpu.measured(
            pids, lambda: _run_load(target, functions, args.load, args.seconds)
        )
        redis_after = _redis_stats.commandstats(platform.redis_url)
        summary["redis_per_task"] = _redis_stats.per_task(redis_before, redis_after, tasks)
        summary.update(
            tasks=tasks,
            tasks_per_s=tasks / cpu["wall_seconds"],
            cpu=cpu,
            cpu_us_per_task=_cpu.per_task_us(cpu, tasks),
        )
        progress.say(
            f"{tasks} tasks, {summary['tasks_per_s']:,.0f}/s; CPU share {_fmt(cpu['core_share'])}"
        )
        for name, spy in spies.items():
            try:
                spy.wait(timeout=args.seconds + 60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
                progress.say(f"py-spy for {name} did not finish; killed")
    finally:
        platform.stop()
        shutil.rmtree(out / "data", ignore_errors=True)
    _write(summary, out, progress)
    return 0


def _fmt(shares: dict[str, float]) -> str:
    return ", ".join(f"{k} {v * 100:.0f}%" for k, v in shares.items())


def _write(summary: dict[str, Any], out: Path, progress: Progress) -> None:
    parts = [
        f"# Profile: {summary['mode']} mode, {summary['load']} load ({summary['profiler']})"
        + (f", env {' '.join(summary['env'])}" if summary.get("env") else ""),
        "",
        f"{summary.get('tasks', 0)} tasks at {summary.get('tasks_per_s', 0):,.0f} tasks/s.",
        "",
        "| process | share of a core | CPU us per task | kernel share of its CPU |",
        "|---|---|---|---|",
    ]
    cpu = summary.get("cpu", {})
    for name, share in cpu.get("core_share", {}).items():
        per_task = summary["cpu_us_per_task"].get(name, 0)
        system = cpu.get("system_share", {}).get(name, 0.0)
        parts.append(f"| {name} | {share * 100:.0f}% | {per_task:.0f} | {system * 100:.0f}% |")
    parts += ["", "| Redis command | calls per task | server us per task |", "|---|---|---|"]
    for name, stats in sorted(summary.get("redis_per_task", {}).items()):
        parts.append(
            f"| {name} | {stats['calls_per_task']:.3f} | {stats['server_us_per_task']:.1f} |"
        )
    counts = {}
    for path in sorted(out.glob("*.json")):
        if path.name != "summary.json":
            counts[path.stem] = json.loads(path.read_text())
    if counts:
        summary["batches"] = counts
        parts += ["", "| service | function | calls | items | items per call | calls per task |"]
        parts.append("|---|---|---|---|---|---|")
        tasks = max(summary.get("tasks", 0), 1)
        for service, funcs in counts.items():
            for func, c in funcs.items():
                per_call = c["items"] / c["calls"] if c["calls"] else 0.0
                parts.append(
                    f"| {service} | {func} | {c['calls']} | {c['items']} | {per_call:.2f} "
                    f"| {c['calls'] / tasks:.3f} |"
                )
    parts.append("")
    stacks = {}
    for name in _PROFILED:
        raw = out / f"{name}.raw.txt"
        if raw.exists():
            stacks[name] = _stacks.summarize(raw)
            parts.append(_stacks.markdown(name, stacks[name]))
    summary["stacks"] = stacks
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    text = "\n".join(parts)
    (out / "summary.md").write_text(text)
    print(text)
    progress.say(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
