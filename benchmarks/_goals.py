"""Issue 11's figures: each read from one run, beside its target and Ray, Celery and the floors.

Every ratio is ours / theirs from the same run (above 1 is better for throughput, below 1 for
time, latency, CPU and memory). A target that is relative (``>= 1.2x Ray``) is judged against
the reference measured in that run; when the reference is missing (not installed, or its
section failed), the figure is printed and its verdict is ``n/a``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._targets import idle_core_rss, path

# (results, mode) -> value
ModeGetter = Callable[[dict[str, Any], str], Any]
# floors -> value
FloorGetter = Callable[[dict[str, Any]], Any]
# (value, references by name, the mode's results) -> met, or None when a reference is missing
Judge = Callable[[float, Mapping[str, float | None], dict[str, Any]], bool | None]

RAY = "Ray"
CELERY = "Celery"


def in_mode(*keys: str) -> ModeGetter:
    """A getter of ``results["modes"][mode][k1][k2]...``."""
    get = path(*keys)

    def read(results: dict[str, Any], mode: str) -> Any:
        return get(results.get("modes", {}).get(mode, {}))

    return read


def _grpc_floor_cpu_ms(key: str) -> FloorGetter:
    """The bare gRPC floor's CPU per task, server and client summed, in ms."""

    def read(floors: dict[str, Any]) -> float | None:
        per_task = path("grpc", key, "cpu_us_per_task")(floors)
        if not per_task:
            return None
        return float(sum(per_task.values())) / 1000.0

    return read


def _idle_core_rss(results: dict[str, Any], mode: str) -> float | None:
    """Idle RSS of gateway + dispatcher + worker, each with its children (the pool)."""
    return idle_core_rss(results.get("modes", {}).get(mode, {}))


def _scaling(metric: str, worst: bool) -> ModeGetter:
    """The weak-scaling study of one mode: the worst sleep efficiency, or the no-op
    throughput at the largest size."""

    def read(results: dict[str, Any], mode: str) -> float | None:
        points = results.get("scaling", {}).get("modes", {}).get(mode, {})
        return _scaling_value(points, metric, worst)

    return read


def _scaling_value(points: dict[str, Any], metric: str, worst: bool) -> float | None:
    usable = {int(p): point for p, point in points.items() if metric in point}
    if not usable:
        return None
    if worst:
        return float(min(point[metric]["efficiency"] for point in usable.values()))
    return float(usable[max(usable)][metric]["tasks_per_s"])


@dataclass(frozen=True, slots=True)
class Goal:
    """One figure of the issue: how to read it, its target, its references and its verdict."""

    key: str
    label: str
    unit: str
    target: str
    get: ModeGetter
    ray: FloorGetter | None
    celery: FloorGetter | None
    floors: tuple[tuple[str, FloorGetter], ...]
    judge: Judge | None
    # Keys in the mode's own results of the first floor, rerun beside the mode: when it is
    # there it is the floor judged against, and the start-of-run figure is shown after it.
    beside: tuple[str, ...] = ()


def _both(ray: float, celery: float) -> Judge:
    def judge(value: float, refs: Mapping[str, float | None], _: dict[str, Any]) -> bool | None:
        if refs.get(RAY) is None or refs.get(CELERY) is None:
            return None
        return value >= ray * _f(refs[RAY]) and value >= celery * _f(refs[CELERY])

    return judge


def _at_least(name: str, factor: float) -> Judge:
    def judge(value: float, refs: Mapping[str, float | None], _: dict[str, Any]) -> bool | None:
        reference = refs.get(name)
        return None if reference is None else value >= factor * reference

    return judge


def _at_most(name: str, factor: float = 1.0, plus: float = 0.0) -> Judge:
    def judge(value: float, refs: Mapping[str, float | None], _: dict[str, Any]) -> bool | None:
        reference = refs.get(name)
        return None if reference is None else value <= factor * reference + plus

    return judge


def _bound(limit: float, strict: bool = False) -> Judge:
    def judge(value: float, _refs: Mapping[str, float | None], _m: dict[str, Any]) -> bool | None:
        return value < limit if strict else value <= limit

    return judge


def _p99_ok(value: float, _refs: Mapping[str, float | None], mode: dict[str, Any]) -> bool | None:
    p50 = path("sdk_round_trip", "p50_ms")(mode)
    return None if p50 is None else value <= 2.0 * p50


def _makespan_ok(
    value: float, _refs: Mapping[str, float | None], mode: dict[str, Any]
) -> bool | None:
    ideal = path("makespan", "ideal_seconds")(mode)
    return None if not ideal else value <= 1.03 * ideal


def _f(value: float | None) -> float:
    return math.nan if value is None else float(value)


_RAY_TPS = path("ray", "throughput", "tasks_per_s")
_CELERY_TPS = path("celery", "throughput", "tasks_per_s")
GRPC_FLOOR = "gRPC floor"
FASTAPI_FLOOR = "FastAPI floor"
POOL = "Pool"

GOALS: tuple[Goal, ...] = (
    Goal(
        "sdk_submit",
        "SDK: submit() x{sdk_tasks}, then every result()",
        "tasks/s",
        ">= 1.2x Ray and >= 2x Celery",
        in_mode("sdk_submit", "tasks_per_s"),
        _RAY_TPS,
        _CELERY_TPS,
        (
            (GRPC_FLOOR, path("grpc", "throughput", "tasks_per_s")),
            (POOL, path("pool", "apply_async", "tasks_per_s")),
        ),
        _both(1.2, 2.0),
    ),
    Goal(
        "sdk_map",
        "SDK: map() of {sdk_map_tasks} (ExecuteBatch)",
        "tasks/s",
        ">= 4x Ray",
        in_mode("sdk_map", "tasks_per_s"),
        _RAY_TPS,
        _CELERY_TPS,
        (
            (GRPC_FLOOR, path("grpc", "batch_throughput", "tasks_per_s")),
            (POOL, path("pool", "map", "tasks_per_s")),
        ),
        _at_least(RAY, 4.0),
    ),
    Goal(
        "cpu_per_task",
        "CPU per no-op task, every process + client (SDK submit run)",
        "ms",
        "<= 0.8",
        in_mode("sdk_submit", "cpu_ms_per_task"),
        path("ray", "throughput", "cpu_ms_per_task"),
        path("celery", "throughput", "cpu_ms_per_task"),
        ((GRPC_FLOOR, _grpc_floor_cpu_ms("throughput")),),
        _bound(0.8),
    ),
    Goal(
        "cpu_per_task_map",
        "CPU per no-op task, every process + client (SDK map run)",
        "ms",
        "(reported)",
        in_mode("sdk_map", "cpu_ms_per_task"),
        path("ray", "throughput", "cpu_ms_per_task"),
        path("celery", "throughput", "cpu_ms_per_task"),
        ((GRPC_FLOOR, _grpc_floor_cpu_ms("batch_throughput")),),
        None,
    ),
    Goal(
        "sdk_rt_p50",
        "SDK round trip p50: submit one, then its result()",
        "ms",
        "<= Ray's p50",
        in_mode("sdk_round_trip", "p50_ms"),
        path("ray", "round_trip", "p50_ms"),
        path("celery", "round_trip", "p50_ms"),
        (
            (GRPC_FLOOR, path("grpc", "round_trip_watch", "p50_ms")),
            (POOL, path("pool", "round_trip", "p50_ms")),
        ),
        _at_most(RAY),
    ),
    Goal(
        "sdk_rt_p99",
        "SDK round trip p99",
        "ms",
        "<= 2x its p50",
        in_mode("sdk_round_trip", "p99_ms"),
        path("ray", "round_trip", "p99_ms"),
        path("celery", "round_trip", "p99_ms"),
        ((GRPC_FLOOR, path("grpc", "round_trip_watch", "p99_ms")),),
        _p99_ok,
    ),
    Goal(
        "rest_clients",
        "REST: 16 clients, execute then long-poll result",
        "tasks/s",
        ">= 0.9x FastAPI floor (rerun beside the mode)",
        in_mode("rest_throughput", "tasks_per_s"),
        _RAY_TPS,
        _CELERY_TPS,
        ((FASTAPI_FLOOR, path("fastapi", "clients", "tasks_per_s")),),
        _at_least(FASTAPI_FLOOR, 0.9),
        beside=("fastapi_beside", "clients", "tasks_per_s"),
    ),
    Goal(
        "rest_rt_p50",
        "REST round trip p50, 1 client: execute + long-poll",
        "ms",
        "<= FastAPI floor's POST + GET (rerun beside the mode) + 1 ms",
        in_mode("rest_round_trip", "p50_ms"),
        path("ray", "round_trip", "p50_ms"),
        path("celery", "round_trip", "p50_ms"),
        ((FASTAPI_FLOOR, path("fastapi", "round_trip", "p50_ms")),),
        _at_most(FASTAPI_FLOOR, plus=1.0),
        beside=("fastapi_beside", "round_trip", "p50_ms"),
    ),
    Goal(
        "makespan",
        "Makespan: 40 x sleep(0.1) on 2 processes",
        "s",
        "<= 1.03x ideal (2.06 s)",
        in_mode("makespan", "seconds"),
        path("ray", "makespan", "seconds"),
        path("celery", "makespan", "seconds"),
        ((POOL, path("pool", "makespan", "seconds")),),
        _makespan_ok,
    ),
    Goal(
        "idle_memory",
        "Idle RSS: gateway + dispatcher + 2-process worker",
        "MiB",
        "< 250",
        _idle_core_rss,
        path("ray", "memory", "idle", "rss_mib"),
        path("celery", "memory", "idle", "rss_mib"),
        (),
        _bound(250.0, strict=True),
    ),
    Goal(
        "scaling_sleep",
        "Weak scaling: sleep-task efficiency, worst size",
        "ratio",
        "(reported)",
        _scaling("sleep", worst=True),
        None,
        None,
        (),
        None,
    ),
    Goal(
        "scaling_noop",
        "Weak scaling: no-op tasks/s at the largest size",
        "tasks/s",
        "(reported)",
        _scaling("noop", worst=False),
        None,
        None,
        (),
        None,
    ),
)

# The weak-scaling rows' floor is the Pool's own study, which lives beside the modes.
_SCALING_POOL: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "scaling_sleep": lambda r: _scaling_value(r.get("scaling", {}).get("pool", {}), "sleep", True),
    "scaling_noop": lambda r: _scaling_value(r.get("scaling", {}).get("pool", {}), "noop", False),
}


def _label(goal: Goal, results: dict[str, Any]) -> str:
    sizes = results.get("config", {}).get("sizes", {})
    values = {k: f"{v:,}" if isinstance(v, int) else v for k, v in sizes.items()}
    values.setdefault("sdk_tasks", "5,000")
    values.setdefault("sdk_map_tasks", "5,000")
    return goal.label.format(**values)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (figure, mode): measured value, references, ratios and the verdict."""
    floors = results.get("floors", {})
    out = []
    for goal in GOALS:
        ray = _number(goal.ray(floors)) if goal.ray else None
        celery = _number(goal.celery(floors)) if goal.celery else None
        run_floors = [(name, _number(get(floors))) for name, get in goal.floors]
        if goal.key in _SCALING_POOL:
            run_floors = [(POOL, _number(_SCALING_POOL[goal.key](results)))]
        for mode, data in results.get("modes", {}).items():
            if not isinstance(data, dict) or "error" in data:
                continue
            floor_values = list(run_floors)
            rerun = _number(path(*goal.beside)(data)) if goal.beside else None
            if rerun is not None:
                name, start = floor_values[0]
                floor_values = [(name, rerun), (f"{name} at start", start), *floor_values[1:]]
            references: dict[str, float | None] = {RAY: ray, CELERY: celery}
            references.update(floor_values)
            value = _number(goal.get(results, mode))
            met = None
            if goal.judge is not None and value is not None:
                met = goal.judge(value, references, data)
            out.append(
                {
                    "key": goal.key,
                    "figure": f"{_label(goal, results)} [{mode}]",
                    "mode": mode,
                    "unit": goal.unit,
                    "target": goal.target,
                    "value": value,
                    "ray": ray if goal.ray else None,
                    "celery": celery if goal.celery else None,
                    "floors": floor_values,
                    "ratio_ray": ratio(value, ray),
                    "ratio_celery": ratio(value, celery),
                    "ratio_floors": [(name, ratio(value, f)) for name, f in floor_values],
                    "judged": goal.judge is not None,
                    "met": met,
                }
            )
    return out


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, or None when either is missing or the reference is 0."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "tasks/s":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.2f}"
    if unit in ("s", "ratio"):
        return f"{value:.3f}"
    return f"{value:.1f}"


def times(value: float | None) -> str:
    """A ratio with at least two significant digits: 1.23x, 0.050x, 0.00031x."""
    if value is None:
        return ""
    if value >= 0.1:
        return f"{value:.2f}x"
    if value >= 0.01:
        return f"{value:.3f}x"
    return f"{value:.2g}x"


def _reference_cell(r: float | None, reference: float | None, unit: str) -> str:
    if reference is None:
        return ""
    return f"{times(r)} ({number(reference, unit)})"


def verdict(row: dict[str, Any]) -> str:
    if not row["judged"]:
        return ""
    if row["value"] is None or row["met"] is None:
        return "n/a"
    return "yes" if row["met"] else "**NO**"


def table(figure_rows: list[dict[str, Any]]) -> str:
    """The Markdown table: figure, target, measured, ratio to Ray, Celery, floor, met."""
    lines = [
        "| Figure | Target | Measured | x Ray (Ray's) | x Celery (Celery's) | x floor (floor's) "
        "| Met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in figure_rows:
        unit = row["unit"]
        floors = "; ".join(
            f"{name} {times(r)} ({number(f, unit)})"
            for (name, f), (_, r) in zip(row["floors"], row["ratio_floors"], strict=True)
            if f is not None
        )
        cells = [
            f"{row['figure']} ({unit})",
            row["target"],
            number(row["value"], unit),
            _reference_cell(row["ratio_ray"], row["ray"], unit),
            _reference_cell(row["ratio_celery"], row["celery"], unit),
            floors,
            verdict(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tally(figure_rows: list[dict[str, Any]]) -> str:
    """``N of M judged figures met`` and the missed ones, for the report's first line."""
    judged = [row for row in figure_rows if row["judged"]]
    met = [row for row in judged if row["met"]]
    unknown = [row for row in judged if row["met"] is None]
    text = f"{len(met)} of {len(judged)} judged figures met"
    if unknown:
        text += f" ({len(unknown)} n/a: a reference or figure is missing)"
    return text + "."
