"""The target figures of one dispatcher mode, on a platform with two worker processes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from . import (
    _cpu,
    _grpc_load,
    _logs,
    _memory,
    _platform,
    _rest_floor,
    _rest_load,
    _sdk_load,
    _tasks,
)
from ._progress import Progress
from ._sizes import Sizes
from ._stats import median


def measure(
    mode: str,
    sizes: Sizes,
    log_dir: Path,
    log_level: str,
    progress: Progress,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Latency, throughput (gRPC and REST), memory and makespan of ``mode``."""
    noop_args = _tasks.NOOP_ARGS
    rest_args = _tasks.rest_encode(noop_args)
    out: dict[str, Any] = {"mode": mode, "processes": sizes.processes}
    with _platform.running(mode, sizes.processes, log_dir, log_level, env) as target:
        progress.say(f"{mode}: platform up in {target.start_seconds:.1f}s {target.pids}")
        out["start_seconds"] = target.start_seconds
        out["pids"] = target.pids
        functions = _platform.register_all(target.gateway)
        gateway = target.gateway
        asyncio.run(_grpc_load.warm_up(gateway, functions.noop, noop_args))
        out["memory_idle"] = _memory.services_memory(target.pids)

        for via in ("get_result", "watch"):
            out[f"grpc_round_trip_{via}"] = result = asyncio.run(
                _grpc_load.round_trips(
                    gateway, functions.noop, noop_args, sizes.grpc_round_trips, via=via
                )
            )
            progress.say(f"{mode}: gRPC round trip via {via}: {_ms(result)}")
        _sdk(out, target, functions.noop, sizes, progress)

        out["grpc_throughput"] = result = _with_cpu(
            target.pids,
            lambda: asyncio.run(
                _grpc_load.throughput(
                    gateway, functions.noop, noop_args, sizes.grpc_tasks, window=sizes.grpc_window
                )
            ),
        )
        progress.say(f"{mode}: gRPC throughput: {_tps(result)}")
        out["grpc_batch_throughput"] = result = _with_cpu(
            target.pids,
            lambda: asyncio.run(
                _grpc_load.throughput(
                    gateway,
                    functions.noop,
                    noop_args,
                    sizes.grpc_batch_tasks,
                    batch=sizes.batch,
                    window=sizes.grpc_window,
                )
            ),
        )
        progress.say(f"{mode}: gRPC batch throughput: {_tps(result)}")
        try:
            out["fastapi_beside"] = _rest_floor.beside(sizes, log_dir, log_level)
            progress.say(
                f"{mode}: FastAPI floor beside it: {_ms(out['fastapi_beside']['round_trip'])}, "
                f"{_tps(out['fastapi_beside']['clients'])}"
            )
        except Exception as exc:  # the floor's rerun is a reference: the mode goes on
            out["fastapi_beside"] = {"error": f"{type(exc).__name__}: {exc}"}
        out["rest_round_trip"] = result = asyncio.run(
            _rest_load.round_trips(
                target.rest_url, functions.noop, rest_args, sizes.rest_round_trips
            )
        )
        progress.say(f"{mode}: REST round trip: {_ms(result)}")
        out["rest_throughput"] = result = _with_cpu(
            target.pids,
            lambda: asyncio.run(
                _rest_load.clients_throughput(
                    target.rest_url,
                    functions.noop,
                    rest_args,
                    sizes.rest_tasks,
                    clients=sizes.rest_clients,
                )
            ),
        )
        progress.say(f"{mode}: REST {sizes.rest_clients} clients: {_tps(result)}")
        out["rest_batch_throughput"] = result = _with_cpu(
            target.pids,
            lambda: asyncio.run(
                _rest_load.batch_throughput(
                    target.rest_url,
                    functions.noop,
                    rest_args,
                    sizes.rest_batch_tasks,
                    batch=sizes.batch,
                    clients=sizes.rest_clients,
                )
            ),
        )
        progress.say(f"{mode}: REST batch: {_tps(result)}")
        out["memory_peak"] = _memory.services_memory(target.pids)

        out["makespan"] = result = asyncio.run(
            _grpc_load.makespan(
                gateway,
                functions.sleep,
                _tasks.sleep_args(sizes.makespan_sleep),
                sizes.makespan_tasks,
            )
        )
        ideal = sizes.makespan_tasks * sizes.makespan_sleep / sizes.processes
        result["ideal_seconds"] = ideal
        result["ratio_to_ideal"] = result["seconds"] / ideal
        progress.say(
            f"{mode}: makespan {result['seconds']:.3f}s ({result['ratio_to_ideal']:.3f}x ideal)"
        )
    out["log_findings"] = _logs.scan(log_dir)
    return out


def _sdk(
    out: dict[str, Any],
    target: _platform.Target,
    function_id: str,
    sizes: Sizes,
    progress: Progress,
) -> None:
    """The SDK's figures: round trip, submit() x N then result(), and map of N (repeated)."""
    mode, gateway = target.mode, target.gateway
    out["sdk_round_trip"] = result = _sdk_load.round_trips(
        gateway, function_id, sizes.sdk_round_trips
    )
    progress.say(f"{mode}: SDK round trip: {_ms(result)}")
    out["sdk_submit"] = result = _repeated(
        target.pids,
        sizes.repetitions,
        lambda: _sdk_load.submit_throughput(gateway, function_id, sizes.sdk_tasks),
    )
    progress.say(f"{mode}: SDK submit() x{sizes.sdk_tasks} + result(): {_reps(result)}")
    out["sdk_map"] = result = _repeated(
        target.pids,
        sizes.repetitions,
        lambda: _sdk_load.map_throughput(gateway, function_id, sizes.sdk_map_tasks),
    )
    progress.say(f"{mode}: SDK map of {sizes.sdk_map_tasks}: {_reps(result)}")


def _repeated(pids: dict[str, int], repetitions: int, run: Any) -> dict[str, Any]:
    """``run`` ``repetitions`` times, each with its CPU; the medians are the figures."""
    runs = []
    for _ in range(max(1, repetitions)):
        result, cpu = _cpu.measured(pids, run)
        result["cpu"] = cpu
        result["cpu_ms_per_task"] = _cpu.total_ms_per_task(cpu, result["completed"])
        runs.append(result)
    return {
        "runs": runs,
        "tasks": runs[0]["tasks"],
        "tasks_per_s": median([r["tasks_per_s"] for r in runs]),
        "cpu_ms_per_task": median([r["cpu_ms_per_task"] for r in runs]),
        "completed": sum(r["completed"] for r in runs),
        "lost": sum(r["lost"] for r in runs),
        "errors": {k: v for r in runs for k, v in r["errors"].items()},
    }


def _reps(result: dict[str, Any]) -> str:
    each = ", ".join(f"{r['tasks_per_s']:,.0f}" for r in result["runs"])
    lost = f", LOST {result['lost']} {result['errors']}" if result["lost"] else ""
    return (
        f"median {result['tasks_per_s']:,.0f} tasks/s ({each}), "
        f"{result['cpu_ms_per_task']:.2f} ms CPU/task{lost}"
    )


def _with_cpu(pids: dict[str, int], run: Any) -> dict[str, Any]:
    """A throughput run's result with each process's CPU use during it."""
    result, cpu = _cpu.measured(pids, run)
    result["cpu"] = cpu
    result["cpu_us_per_task"] = _cpu.per_task_us(cpu, result["completed"])
    return dict(result)


def _ms(result: dict[str, Any]) -> str:
    if not result.get("n"):
        return f"no samples {result.get('errors')}"
    return f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms (n={result['n']})"


def _tps(result: dict[str, Any]) -> str:
    extra = "" if not result["lost"] else f", LOST {result['lost']} {result['statuses']}"
    if result.get("retried"):
        extra += f", {sum(result['retried'].values())} GetResult retries"
    done = f"{result['completed']} in {result['seconds']:.2f}s"
    return f"{result['tasks_per_s']:,.0f} tasks/s ({done}{extra})"
