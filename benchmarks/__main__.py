"""``python -m benchmarks [--quick] [--modes local,pull,push] [--out DIR]``: the benchmark suite.

Floors first (multiprocessing.Pool, a bare grpc.aio server, a bare FastAPI app, and Celery and
Ray when installed, the ``bench`` extra), then each mode's figures on a 2-process platform (the
SDK's, gRPC's and REST's), then the weak-scaling study; a section that fails is recorded and the
run goes on. Prints the report (issue 11's figures first, each beside its target and its ratios
to Ray, Celery and the floors of the same run) and writes results.json, report.md and the
scaling plots under ``--out`` (default ``benchmarks/results/<timestamp>/``, with the services'
logs in ``logs/``). The load average is sampled at each section: above 2 means contention.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import (
    _celery_floor,
    _grpc_floor_load,
    _machine,
    _modes,
    _plots,
    _pool_floor,
    _ray_floor,
    _report,
    _rest_floor,
    _scaling,
)
from ._progress import Progress
from ._sizes import FULL, QUICK, Sizes

MODES = ("local", "pull", "push")
SECTIONS = ("floors", "modes", "scaling")
RESULTS_ROOT = Path(__file__).resolve().parent / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: fewer tasks, 1 repetition (~3 min)"
    )
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated dispatcher modes")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"sections: {','.join(SECTIONS)}"
    )
    parser.add_argument(
        "--out", type=Path, help="results folder (default benchmarks/results/<timestamp>)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        help="seconds after which no further mode or scaling point starts "
        "(default 780, or 240 with --quick), so a slow or broken platform cannot stretch "
        "the run: what is skipped is listed under Anomalies",
    )
    parser.add_argument("--log-level", default="INFO", help="FAAS_LOG_LEVEL of the services")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the services, e.g. FAAS_PREFETCH=64 (repeatable), for A/B runs",
    )
    args = parser.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    args.only = [s for s in args.only.split(",") if s]
    if any("=" not in item for item in args.env):
        parser.error("--env takes KEY=VALUE")
    args.env = dict(item.split("=", 1) for item in args.env)
    for mode in args.modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}")
    for section in args.only:
        if section not in SECTIONS:
            parser.error(f"unknown section {section!r}")
    return args


def _guarded(results: dict[str, Any], what: str, progress: Progress, run: Callable[[], Any]) -> Any:
    """Runs one section; a failure is recorded (and printed) instead of ending the run."""
    try:
        return run()
    except Exception as exc:
        message = f"{what} failed: {type(exc).__name__}: {exc}"
        progress.say(message)
        results["errors"].append(message)
        return {"error": message}


def _floors(
    results: dict[str, Any], sizes: Sizes, logs: Path, log_level: str, progress: Progress
) -> None:
    floors = results["floors"]
    _sample_load(results, "floors")
    floors["pool"] = _guarded(
        results,
        "multiprocessing.Pool floor",
        progress,
        lambda: _pool_floor.measure(
            sizes.processes, sizes.pool_tasks, sizes.pool_round_trips, sizes.makespan_tasks
        ),
    )
    progress.say("floor: multiprocessing.Pool done")
    floors["grpc"] = _guarded(
        results, "gRPC floor", progress, lambda: _grpc_floor_load.measure(sizes, logs)
    )
    progress.say("floor: bare grpc.aio done")
    floors["fastapi"] = _guarded(
        results, "FastAPI floor", progress, lambda: _rest_floor.measure(sizes, logs, log_level)
    )
    progress.say("floor: bare FastAPI done")
    _sample_load(results, "celery")
    why_not = _celery_floor.available()
    if why_not is not None:
        floors["celery"] = {"skipped": why_not}
        progress.say(f"floor: Celery {why_not}")
    else:
        floors["celery"] = _guarded(
            results,
            "Celery comparison",
            progress,
            lambda: _celery_floor.measure(
                sizes.processes,
                sizes.celery_tasks,
                sizes.celery_round_trips,
                sizes.makespan_tasks,
                logs,
                repetitions=sizes.repetitions,
            ),
        )
        floors["celery"]["version"] = importlib.metadata.version("celery")
        progress.say(f"floor: Celery done: {_comparison(floors['celery'])}")
    _sample_load(results, "ray")
    why_not = _ray_floor.available()
    if why_not is not None:
        floors["ray"] = {"skipped": why_not}
        progress.say(f"floor: Ray {why_not}")
        return
    floors["ray"] = _guarded(
        results,
        "Ray comparison",
        progress,
        lambda: _ray_floor.measure(
            sizes.processes,
            sizes.ray_tasks,
            sizes.repetitions,
            sizes.ray_round_trips,
            sizes.makespan_tasks,
            logs,
        ),
    )
    progress.say(f"floor: Ray done: {_comparison(floors['ray'])}")


def _comparison(result: dict[str, Any]) -> str:
    if "throughput" not in result:
        return str(result.get("error"))
    throughput, round_trip = result["throughput"], result["round_trip"]
    each = ", ".join(f"{r['tasks_per_s']:,.0f}" for r in throughput["runs"])
    return (
        f"median {throughput['tasks_per_s']:,.0f} tasks/s ({each}), "
        f"{throughput['cpu_ms_per_task']:.2f} ms CPU/task, round trip p50 "
        f"{round_trip.get('p50_ms', float('nan')):.2f} ms, p99 "
        f"{round_trip.get('p99_ms', float('nan')):.2f} ms"
    )


def _sample_load(results: dict[str, Any], section: str) -> None:
    """The 1/5/15-minute load averages as a section starts (other work on the 2 cores)."""
    results["machine"].setdefault("load_samples", []).append(
        {"section": section, "load_average": _machine.load_average()}
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sizes = QUICK if args.quick else FULL
    budget = args.budget if args.budget is not None else (240.0 if args.quick else 780.0)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir: Path = args.out or RESULTS_ROOT / stamp
    logs = out_dir / "logs"
    progress = Progress()
    progress.say(f"results in {out_dir}")
    results: dict[str, Any] = {
        "started": stamp,
        "machine": _machine.facts(),
        "config": {
            "quick": args.quick,
            "modes": args.modes,
            "sections": args.only,
            "log_level": args.log_level,
            "env": args.env,
            "sizes": dataclasses.asdict(sizes),
            "budget_seconds": budget,
        },
        "floors": {},
        "modes": {},
        "errors": [],
    }
    if "floors" in args.only:
        _floors(results, sizes, logs, args.log_level, progress)
    if "modes" in args.only:
        for mode in args.modes:
            _sample_load(results, mode)
            if progress.elapsed > budget:
                message = f"mode {mode} skipped: the run's time budget ({budget:.0f} s) was spent"
                progress.say(message)
                results["errors"].append(message)
                results["modes"][mode] = {"error": message}
                continue
            results["modes"][mode] = _guarded(
                results,
                f"mode {mode}",
                progress,
                lambda m=mode: _modes.measure(
                    m, sizes, logs / m, args.log_level, progress, args.env
                ),  # type: ignore[misc]
            )
    if "scaling" in args.only:
        _sample_load(results, "scaling")
        results["scaling"] = _guarded(
            results,
            "scaling study",
            progress,
            lambda: _scaling.measure(
                args.modes,
                sizes,
                logs / "scaling",
                args.log_level,
                progress,
                args.env,
                deadline=progress.started + budget,
            ),
        )
    results["machine"]["load_average_end"] = _machine.load_average()
    _sample_load(results, "end")
    results["elapsed_seconds"] = progress.elapsed
    report = _report.write(results, out_dir)
    if isinstance(results.get("scaling"), dict) and "pool" in results["scaling"]:
        _plots.write(results["scaling"], out_dir)
    print(_report.markdown(results))
    progress.say(f"wrote {report} in {progress.elapsed:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
