"""Runs the gRPC load against the bare grpc.aio floor server, in a process of its own."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import grpc
from faas.v1 import gateway_pb2, gateway_pb2_grpc

from services.launcher.redis_server import free_port

from . import _cpu, _grpc_load, _memory, _processes, _tasks
from ._sizes import Sizes


def _answers(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            gateway_pb2_grpc.GatewayServiceStub(channel).GetResult(
                gateway_pb2.GetResultRequest(task_id="ready"), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return True


def measure(sizes: Sizes, log_dir: Path) -> dict[str, Any]:
    """Throughput (one call each, and batched), round trips, CPU per task of client and server."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    argv = [sys.executable, "-m", "benchmarks._grpc_floor", "--port", str(port)]
    args = _tasks.NOOP_ARGS
    out: dict[str, Any] = {}
    with _processes.started(argv, log_dir / "grpc-floor.log", lambda: _answers(target)) as server:
        pids = {"server": server.pid}
        for via in ("get_result", "watch"):
            out[f"round_trip_{via}"] = asyncio.run(
                _grpc_load.round_trips(target, "floor", args, sizes.grpc_round_trips, via=via)
            )
        for key, batch, count in (
            ("throughput", 0, sizes.grpc_tasks),
            ("batch_throughput", sizes.batch, sizes.grpc_batch_tasks),
        ):
            result, cpu = _cpu.measured(
                pids,
                lambda b=batch, c=count: asyncio.run(  # type: ignore[misc]
                    _grpc_load.throughput(
                        target, "floor", args, c, batch=b, window=sizes.grpc_window
                    )
                ),
            )
            result["cpu"] = cpu
            result["cpu_us_per_task"] = _cpu.per_task_us(cpu, result["completed"])
            out[key] = result
        out["memory"] = _memory.tree_memory(server.pid)
    return out
