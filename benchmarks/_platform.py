"""The platform under test, started per mode with free ports and a temporary data directory."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from faas.v1 import gateway_pb2, gateway_pb2_grpc

from services.launcher.platform import Platform, PlatformConfig

from . import _tasks


@dataclass(frozen=True, slots=True)
class Target:
    """Where a started platform answers, and its processes."""

    mode: str
    processes: int
    gateway: str
    rest_url: str
    pids: dict[str, int]
    log_dir: Path
    start_seconds: float


@contextlib.contextmanager
def running(
    mode: str,
    processes: int,
    log_dir: Path,
    log_level: str,
    env: dict[str, str] | None = None,
) -> Iterator[Target]:
    """The whole platform in ``mode`` with ``processes`` worker processes, stopped on exit.

    ``env`` is added to the services' environment (e.g. ``FAAS_PREFETCH``), for A/B runs.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="faas-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    config = PlatformConfig(
        mode=mode,
        worker_processes=processes,
        workers=1,
        gateway_port=0,
        dispatcher_port=0,
        rest_port=0,
        data_dir=data_dir,
        log_dir=log_dir,
        extra_env={"FAAS_LOG_LEVEL": log_level, **(env or {})},
    )
    platform = Platform(config)
    started = time.perf_counter()
    try:
        platform.start()
        elapsed = time.perf_counter() - started
        pids = {
            "gateway": platform.gateway.pid,
            "dispatcher": platform.dispatcher.pid,
            "rest": platform.rest.pid,
        }
        for index, worker in enumerate(platform.workers):
            pids["worker" if index == 0 else f"worker{index + 1}"] = worker.pid
        if platform.redis is not None and platform.redis.process is not None:
            pids["redis"] = platform.redis.process.pid
        yield Target(
            mode=mode,
            processes=processes,
            gateway=platform.gateway_target,
            rest_url=platform.rest_url,
            pids=pids,
            log_dir=log_dir,
            start_seconds=elapsed,
        )
    finally:
        platform.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def register(gateway: str, payload: bytes, name: str) -> str:
    """Registers a function over gRPC (a blocking call, before the load starts)."""
    with grpc.insecure_channel(gateway) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        reply = stub.RegisterFunction(
            gateway_pb2.RegisterFunctionRequest(name=name, payload=payload), timeout=10.0
        )
    return str(reply.function_id)


@dataclass(frozen=True, slots=True)
class Functions:
    noop: str
    sleep: str


def register_all(gateway: str) -> Functions:
    return Functions(
        noop=register(gateway, _tasks.NOOP_FUNCTION, "noop"),
        sleep=register(gateway, _tasks.SLEEP_FUNCTION, "sleep"),
    )
