"""The run's report: results JSON, a Markdown table of every target, and the scaling plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from . import _goals
from ._targets import SPECS

_SERVICES = ("gateway", "dispatcher", "worker", "rest", "redis")


def _num(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "tasks/s":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.2f}"
    if unit == "s":
        return f"{value:.3f}"
    return f"{value:.1f}"


def _ratio(value: float | None, floor: float | None) -> str:
    if value is None or not floor or math.isnan(value) or math.isnan(floor):
        return ""
    ratio = value / floor
    return f"{ratio:.3f}x" if ratio < 0.1 else f"{ratio:.2f}x"


def target_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (target, mode): value, whether it is met, and its ratio to each floor."""
    floors = results.get("floors", {})
    rows = []
    for spec in SPECS:
        for mode, data in results.get("modes", {}).items():
            if "error" in data:
                continue
            value = spec.get(data)
            rows.append(
                {
                    "key": spec.key,
                    "label": spec.label,
                    "mode": mode,
                    "unit": spec.unit,
                    "value": value,
                    "target": spec.target,
                    "met": None if spec.ok is None or value is None else spec.ok(value, floors),
                    "floors": {name: get(floors) for name, get in spec.floors},
                }
            )
    return rows


def summary_table(rows: list[dict[str, Any]], modes: list[str]) -> str:
    """Each target once, with every mode's figure beside it (yes/NO) and the floors' figures."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(row["key"], []).append(row)
    lines = _header("Figure", "Target", *modes, "Floors, same run")
    for group in by_key.values():
        first = group[0]
        cells = {row["mode"]: _num(row["value"], row["unit"]) + _mark(row["met"]) for row in group}
        floors = ", ".join(
            f"{name} {_num(value, first['unit'])}"
            for name, value in first["floors"].items()
            if value is not None
        )
        lines.append(
            _row(
                f"{first['label']} ({first['unit']})",
                first["target"],
                *(cells.get(mode, "") for mode in modes),
                floors,
            )
        )
    return "\n".join(lines)


def _mark(met: bool | None) -> str:
    return {True: " yes", False: " **NO**", None: ""}[met]


def _met(met: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: ""}[met]


def _floor_cells(row: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    cells = []
    for name in names:
        floor = row["floors"].get(name)
        if name not in row["floors"] or floor is None:
            cells.append("")
        else:
            cells.append(f"{_ratio(row['value'], floor)} ({_num(floor, row['unit'])})")
    return cells


def targets_table(rows: list[dict[str, Any]]) -> str:
    names = ("Pool", "gRPC", "FastAPI", "Celery")
    head = (
        "| Figure | Mode | Measured | Target | Met | "
        + " | ".join(f"x {n} (floor)" for n in names)
        + " |"
    )
    lines = [head, "|" + "---|" * (5 + len(names))]
    for row in rows:
        cells = [
            f"{row['label']} ({row['unit']})",
            row["mode"],
            _num(row["value"], row["unit"]),
            row["target"],
            _met(row["met"]),
            *_floor_cells(row, names),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(*names: str) -> list[str]:
    return [_row(*names), "|" + "---|" * len(names)]


def _tps(value: float) -> str:
    return _num(value, "tasks/s")


def _p50_p99(summary: dict[str, Any], digits: int = 2) -> str:
    return f"{summary['p50_ms']:.{digits}f} / {summary['p99_ms']:.{digits}f}"


def floors_table(floors: dict[str, Any]) -> str:
    lines = _header(
        "Floor",
        "Throughput (tasks/s)",
        "Batch throughput (tasks/s)",
        "Round trip p50 / p99 (ms)",
        "Makespan 40 x 0.1 s (s)",
        "Idle RSS (MiB)",
    )
    pool = floors.get("pool")
    if pool and "error" not in pool:
        lines.append(
            _row(
                f"multiprocessing.Pool({pool['processes']})",
                f"{_tps(pool['apply_async']['tasks_per_s'])} (apply_async)",
                f"{_tps(pool['map']['tasks_per_s'])} (map, chunked)",
                f"{_p50_p99(pool['round_trip'], 3)} (apply)",
                f"{pool['makespan']['seconds']:.3f}",
                "",
            )
        )
    grpc_floor = floors.get("grpc")
    if grpc_floor and "error" not in grpc_floor:
        lines.append(
            _row(
                "bare grpc.aio GatewayService",
                f"{_tps(grpc_floor['throughput']['tasks_per_s'])} (submit, then GetResult each)",
                _tps(grpc_floor["batch_throughput"]["tasks_per_s"]),
                f"{_p50_p99(grpc_floor['round_trip_get_result'])} (GetResult), "
                f"{_p50_p99(grpc_floor['round_trip_watch'])} (WatchTask)",
                "",
                f"{grpc_floor['memory']['rss_mib']:.1f}",
            )
        )
    fastapi = floors.get("fastapi")
    if fastapi and "error" not in fastapi:
        lines.append(
            _row(
                "bare FastAPI + uvicorn",
                f"{_tps(fastapi['clients']['tasks_per_s'])} (16 clients, POST+GET)",
                _tps(fastapi["batch"]["tasks_per_s"]),
                _p50_p99(fastapi["round_trip"]),
                "",
                f"{fastapi['memory']['idle']['rss_mib']:.1f}",
            )
        )
    for name, title in (
        ("celery", "Celery {version} + Redis, prefork -c {processes}, delay() then get()"),
        ("ray", "Ray {version}, num_cpus={processes}, f.remote() then ray.get"),
    ):
        lines.extend(_comparison_row(floors.get(name), name.capitalize(), title))
    return "\n".join(lines)


def _comparison_row(data: dict[str, Any] | None, name: str, title: str) -> list[str]:
    """The Celery or Ray row of the floors table (median of the repetitions)."""
    if not data:
        return []
    if "throughput" not in data:
        return [_row(name, data.get("skipped") or data.get("error"), "", "", "", "")]
    throughput = data["throughput"]
    each = ", ".join(_tps(r["tasks_per_s"]) for r in throughput.get("runs", []))
    return [
        _row(
            title.format(version=data.get("version", ""), processes=data.get("processes", "")),
            f"{_tps(throughput['tasks_per_s'])} (median of {each})",
            "",
            _p50_p99(data["round_trip"]),
            f"{data['makespan']['seconds']:.3f}",
            f"{data['memory']['idle']['rss_mib']:.1f}",
        )
    ]


def repetitions_table(results: dict[str, Any]) -> str:
    """Every repetition of the comparison's throughput runs: tasks/s and CPU ms per task."""
    lines = _header("Run", "tasks/s, each repetition", "median", "CPU ms/task, each", "lost")
    series: list[tuple[str, Any]] = [
        ("Ray f.remote() + ray.get", results.get("floors", {}).get("ray", {}).get("throughput")),
        ("Celery delay() + get()", results.get("floors", {}).get("celery", {}).get("throughput")),
    ]
    for mode, data in results.get("modes", {}).items():
        if isinstance(data, dict):
            series.append((f"{mode}: SDK submit() + result()", data.get("sdk_submit")))
            series.append((f"{mode}: SDK map()", data.get("sdk_map")))
    for label, run in series:
        if not isinstance(run, dict) or not run.get("runs"):
            continue
        lines.append(
            _row(
                label,
                ", ".join(_tps(r["tasks_per_s"]) for r in run["runs"]),
                _tps(run["tasks_per_s"]),
                ", ".join(f"{r.get('cpu_ms_per_task', math.nan):.2f}" for r in run["runs"]),
                sum(r.get("lost", r.get("tasks", 0) - r.get("completed", 0)) for r in run["runs"]),
            )
        )
    return "\n".join(lines)


def _load_line(results: dict[str, Any]) -> str:
    samples = results["machine"].get("load_samples") or []
    if not samples:
        return ""
    each = ", ".join(f"{s['section']} {s['load_average'][0]:.2f}" for s in samples)
    return (
        "Load average (1 min) as each section started: "
        f"{each}. The machine has 2 cores: above 2, other work competed for them."
    )


def memory_table(modes: dict[str, Any]) -> str:
    lines = _header(
        "Mode",
        "Service",
        "Processes",
        "Idle RSS (MiB)",
        "Idle PSS (MiB)",
        "Peak RSS, sum of VmHWM (MiB)",
    )
    for mode, data in modes.items():
        idle, peak = data.get("memory_idle", {}), data.get("memory_peak", {})
        for name in _SERVICES:
            if name not in idle:
                continue
            lines.append(
                _row(
                    mode,
                    name,
                    len(idle[name]["processes"]),
                    f"{idle[name]['rss_mib']:.1f}",
                    f"{idle[name]['pss_mib']:.1f}",
                    f"{peak.get(name, {}).get('hwm_mib', math.nan):.1f}",
                )
            )
    return "\n".join(lines)


_LOADS = (
    ("grpc_throughput", "gRPC"),
    ("grpc_batch_throughput", "gRPC batch"),
    ("rest_throughput", "REST 16 clients"),
    ("rest_batch_throughput", "REST batch"),
)
_CPU_COLUMNS = ("gateway", "dispatcher", "worker", "rest", "redis", "client")


def _cpu_cell(run: dict[str, Any], name: str) -> str:
    us = run["cpu_us_per_task"].get(name)
    share = run["cpu"]["core_share"].get(name, 0.0)
    system = run["cpu"].get("system_share", {}).get(name)
    if us is None:
        return ""
    kernel = "" if system is None else f", sys {system * 100:.0f}%"
    return f"{us:,.0f} ({share * 100:.0f}%{kernel})"


def cpu_table(modes: dict[str, Any], floors: dict[str, Any]) -> str:
    """CPU microseconds per task of each process (and its share of one core) per load."""
    lines = _header("Mode", "Load", "tasks/s", *_CPU_COLUMNS)
    grpc_floor = floors.get("grpc") or {}
    for key, label in (("throughput", "gRPC"), ("batch_throughput", "gRPC batch")):
        run = grpc_floor.get(key)
        if isinstance(run, dict) and "cpu" in run:
            cells = [_cpu_cell(run, "server"), "", "", "", "", _cpu_cell(run, "client")]
            lines.append(_row("bare gRPC floor", label, _tps(run["tasks_per_s"]), *cells))
    for mode, data in modes.items():
        for key, label in _LOADS:
            run = data.get(key)
            if isinstance(run, dict) and "cpu" in run:
                cells = [_cpu_cell(run, name) for name in _CPU_COLUMNS]
                lines.append(_row(mode, label, _tps(run["tasks_per_s"]), *cells))
    return "\n".join(lines)


def scaling_table(scaling: dict[str, Any]) -> str:
    lines = _header(
        "Mode",
        "Processes",
        "No-op tasks",
        "No-op tasks/s",
        "x Pool",
        "Sleep tasks",
        "Sleep wall (s)",
        "Efficiency",
        "Lost",
    )
    pool = scaling.get("pool", {})
    series = [("Pool", pool), *scaling.get("modes", {}).items()]
    for mode, points in series:
        for p, point in points.items():
            if "error" in point:
                lines.append(_row(mode, p, f"error: {point['error']}", "", "", "", "", "", ""))
                continue
            noop, sleep = point["noop"], point["sleep"]
            floor = pool.get(p, {}).get("noop", {}).get("tasks_per_s")
            lines.append(
                _row(
                    mode,
                    p,
                    noop["tasks"],
                    _tps(noop["tasks_per_s"]),
                    _ratio(noop["tasks_per_s"], floor),
                    sleep["tasks"],
                    f"{sleep['seconds']:.3f}",
                    f"{sleep['efficiency']:.2f}",
                    point.get("lost") or "",
                )
            )
    return "\n".join(lines)


_PHASES = ("submit_to_stored", "stored_to_started", "started_to_finished", "finished_to_client")


def phases_table(modes: dict[str, Any]) -> str:
    """Where a round trip's time goes: client -> stored -> started -> finished -> client."""
    lines = _header("Mode", "Via", "p50 (ms)", *_PHASES)
    for mode, data in modes.items():
        for via in ("get_result", "watch"):
            run = data.get(f"grpc_round_trip_{via}")
            if not isinstance(run, dict) or not run.get("phases_mean_ms"):
                continue
            phases = run["phases_mean_ms"]
            cells = [f"{phases.get(name, math.nan):.2f}" for name in _PHASES]
            lines.append(_row(mode, via, f"{run['p50_ms']:.2f}", *cells))
    return "\n".join(lines)


def anomalies(results: dict[str, Any]) -> list[str]:
    """Lost tasks, failed calls, errors and warnings in the services' logs."""
    out = list(results.get("errors", []))
    for mode, data in results.get("modes", {}).items():
        for key, value in data.items():
            if isinstance(value, dict) and value.get("lost"):
                out.append(
                    f"{mode} {key}: {value['lost']} task(s) not COMPLETED: {value.get('statuses')}"
                )
            if isinstance(value, dict) and value.get("retried"):
                out.append(f"{mode} {key}: retried calls {value['retried']}")
            if isinstance(value, dict) and value.get("submit_errors"):
                out.append(f"{mode} {key}: failed submits {value['submit_errors']}")
            if isinstance(value, dict) and value.get("errors"):
                out.append(f"{mode} {key}: call errors {value['errors']}")
            if isinstance(value, dict) and value.get("timed_out"):
                out.append(f"{mode} {key}: hit its time limit")
        for log, found in data.get("log_findings", {}).items():
            example = found["first"][0][:200]
            out.append(f"{mode} {log}: {found['count']} warning/error line(s), e.g. {example}")
    for mode, points in results.get("scaling", {}).get("modes", {}).items():
        for p, point in points.items():
            if point.get("retried"):
                out.append(f"scaling {mode} P={p}: {point['retried']} GetResult call(s) retried")
            if point.get("lost") or "error" in point:
                out.append(
                    f"scaling {mode} P={p}: {point.get('error') or str(point['lost']) + ' lost'}"
                )
    return out


def _machine_line(results: dict[str, Any]) -> str:
    m = results["machine"]
    redis = m["redis_server"].split(" sha=")[0]
    quick = " (--quick)" if results["config"]["quick"] else ""
    env = results["config"].get("env")
    return (
        f"Machine: {m['cpus']} x {m['cpu_model']} ({m['cpus_usable']} usable), "
        f"{m['memory_mib']:,} MiB, {m['os']}, Python {m['python']}, {redis}, "
        f"commit {m['git_commit']}; load average {m['load_average_start']} at start, "
        f"{m.get('load_average_end')} at end. Run took {results.get('elapsed_seconds', 0):.0f} s"
        f"{quick}{f'; services env {env}' if env else ''}."
    )


def markdown(results: dict[str, Any]) -> str:
    parts = [
        f"# MPCSFaaS benchmark {results['started']}",
        "",
        _machine_line(results),
        "",
        "Ratios are ours / floor, measured in the same run: above 1 is better for throughput, "
        "below 1 is better for latency, time and memory. The floor's own figure is in "
        "parentheses.",
        "",
        _load_line(results),
        "",
        "## Issue 11: each figure beside its target, Ray, Celery and the floors",
        "",
        "Workload: a no-op task, 2 worker processes, one client; throughput figures are the "
        f"median of {results['config'].get('sizes', {}).get('repetitions', 1)} repetitions. "
        "A cell `0.50x (1,616)` is ours / theirs with theirs in parentheses. "
        + _goals.tally(_goals.rows(results)),
        "",
        _goals.table(_goals.rows(results)),
        "",
        "### Repetitions",
        "",
        repetitions_table(results),
        "",
        "## Issue 6 targets (raw gRPC stubs and REST)",
        "",
        summary_table(target_rows(results), list(results.get("modes", {}))),
        "",
        "### Each figure's ratio to the floors",
        "",
        targets_table(target_rows(results)),
        "",
        "## Floors",
        "",
        floors_table(results.get("floors", {})),
        "",
        "## Memory per service (2 worker processes)",
        "",
        memory_table(results.get("modes", {})),
        "",
        "## CPU per task (microseconds of CPU per completed task; share of one core)",
        "",
        "Each service with its children; the client is this benchmark process. The machine "
        "has 2 cores (200%). In parentheses: the share of one core the process used during the "
        "run, and the kernel's (system time) share of its CPU. The bare gRPC floor's server is "
        "in the gateway column.",
        "",
        cpu_table(results.get("modes", {}), results.get("floors", {})),
        "",
        "## Round-trip phases (mean ms, from the task's stored timestamps)",
        "",
        phases_table(results.get("modes", {})),
        "",
    ]
    if results.get("scaling") and "error" not in results["scaling"]:
        ideal = results["scaling"]["ideal_sleep_seconds"]
        parts += [
            "## Weak scaling",
            "",
            "No-op tasks go in with ExecuteBatch; the sleep tasks' ideal wall time is "
            f"{ideal:.2f} s at every size (efficiency = ideal / measured).",
            "",
            scaling_table(results["scaling"]),
            "",
            "![no-op scaling](scaling_noop.png) ![sleep scaling](scaling_sleep.png)",
            "",
        ]
    found = anomalies(results)
    parts += ["## Anomalies", ""] + ([f"- {a}" for a in found] or ["- none"]) + [""]
    return "\n".join(parts)


def write(results: dict[str, Any], out_dir: Path) -> Path:
    """Writes results.json and report.md (and the plots, when matplotlib is there)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    report = out_dir / "report.md"
    report.write_text(markdown(results))
    return report
