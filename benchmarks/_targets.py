"""The issue's targets: how each figure is read from the results, its bound and its floors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Getter = Callable[[dict[str, Any]], Any]


def path(*keys: str) -> Getter:
    """A getter of ``results[k1][k2]...``; None where any key is missing."""

    def get(data: dict[str, Any]) -> Any:
        value: Any = data
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    return get


def idle_core_rss(mode: dict[str, Any]) -> float | None:
    """Idle RSS of gateway + dispatcher + worker, each with its children (the pool)."""
    memory = mode.get("memory_idle")
    if not memory:
        return None
    return sum(
        memory[name]["rss_mib"] for name in ("gateway", "dispatcher", "worker") if name in memory
    )


@dataclass(frozen=True, slots=True)
class Spec:
    """One target figure: ``get`` reads it from a mode's results, ``floors`` from the floors'."""

    key: str
    label: str
    unit: str
    target: str
    get: Getter
    ok: Callable[[float, dict[str, Any]], bool] | None
    floors: tuple[tuple[str, Getter], ...]


_POOL_TPS = ("Pool", path("pool", "apply_async", "tasks_per_s"))
_CELERY_TPS = ("Celery", path("celery", "throughput", "tasks_per_s"))


def _rest_p50_ok(value: float, floors: dict[str, Any]) -> bool:
    floor = path("fastapi", "round_trip", "p50_ms")(floors)
    return value <= 2.5 and (floor is None or value <= floor + 1.0)


def _grpc_round_trip(via: str, label: str, quantile: str, bound: float) -> Spec:
    return Spec(
        f"grpc_rt_{via}_{quantile}",
        f"gRPC round trip {quantile} (submit + {label})",
        "ms",
        f"<= {bound:g}",
        path(f"grpc_round_trip_{via}", f"{quantile}_ms"),
        lambda v, _: v <= bound,
        (
            ("Pool", path("pool", "round_trip", f"{quantile}_ms")),
            ("gRPC", path("grpc", f"round_trip_{via}", f"{quantile}_ms")),
            ("Celery", path("celery", "round_trip", f"{quantile}_ms")),
        ),
    )


SPECS: tuple[Spec, ...] = (
    Spec(
        "grpc_throughput",
        "gRPC, 1 client, async submits then all results",
        "tasks/s",
        ">= 3,000",
        path("grpc_throughput", "tasks_per_s"),
        lambda v, _: v >= 3000,
        (_POOL_TPS, ("gRPC", path("grpc", "throughput", "tasks_per_s")), _CELERY_TPS),
    ),
    Spec(
        "grpc_batch_throughput",
        "gRPC, ExecuteBatch submits then all results",
        "tasks/s",
        ">= 10,000",
        path("grpc_batch_throughput", "tasks_per_s"),
        lambda v, _: v >= 10000,
        (_POOL_TPS, ("gRPC", path("grpc", "batch_throughput", "tasks_per_s")), _CELERY_TPS),
    ),
    Spec(
        "grpc_batch_submits",
        "gRPC, ExecuteBatch submit rate alone",
        "tasks/s",
        "(reported)",
        path("grpc_batch_throughput", "submits_per_s"),
        None,
        (("gRPC", path("grpc", "batch_throughput", "submits_per_s")),),
    ),
    _grpc_round_trip("get_result", "GetResult wait", "p50", 1.0),
    _grpc_round_trip("get_result", "GetResult wait", "p99", 3.0),
    _grpc_round_trip("watch", "WatchTask", "p50", 1.0),
    _grpc_round_trip("watch", "WatchTask", "p99", 3.0),
    Spec(
        "rest_throughput",
        "REST, 16 clients, execute then long-poll result",
        "tasks/s",
        ">= 800",
        path("rest_throughput", "tasks_per_s"),
        lambda v, _: v >= 800,
        (("FastAPI", path("fastapi", "clients", "tasks_per_s")), _CELERY_TPS),
    ),
    Spec(
        "rest_batch_throughput",
        "REST, execute_batch then 16 clients long-poll results",
        "tasks/s",
        ">= 5,000",
        path("rest_batch_throughput", "tasks_per_s"),
        lambda v, _: v >= 5000,
        (("FastAPI", path("fastapi", "batch", "tasks_per_s")), _CELERY_TPS),
    ),
    Spec(
        "rest_batch_submits",
        "REST, execute_batch submit rate alone",
        "tasks/s",
        "(reported)",
        path("rest_batch_throughput", "submits_per_s"),
        None,
        (("FastAPI", path("fastapi", "batch", "submits_per_s")),),
    ),
    Spec(
        "rest_rt_p50",
        "REST round trip p50, 1 client (POST + GET ?wait=)",
        "ms",
        "<= 2.5 and <= FastAPI + 1",
        path("rest_round_trip", "p50_ms"),
        _rest_p50_ok,
        (
            ("FastAPI", path("fastapi", "round_trip", "p50_ms")),
            ("Celery", path("celery", "round_trip", "p50_ms")),
        ),
    ),
    Spec(
        "rest_rt_p99",
        "REST round trip p99, 1 client",
        "ms",
        "(reported)",
        path("rest_round_trip", "p99_ms"),
        None,
        (("FastAPI", path("fastapi", "round_trip", "p99_ms")),),
    ),
    Spec(
        "makespan",
        "Makespan, 40 x sleep(0.1) on 2 processes (ideal 2.0 s)",
        "s",
        "<= 2.06",
        path("makespan", "seconds"),
        lambda v, _: v <= 2.06,
        (
            ("Pool", path("pool", "makespan", "seconds")),
            ("Celery", path("celery", "makespan", "seconds")),
        ),
    ),
    Spec(
        "idle_memory",
        "Idle RSS, gateway + dispatcher + 2-process worker",
        "MiB",
        "< 250",
        idle_core_rss,
        lambda v, _: v < 250,
        (("Celery", path("celery", "memory", "idle", "rss_mib")),),
    ),
)
