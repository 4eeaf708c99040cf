"""The worker's Prometheus metrics: its tasks by outcome and run time, its processes, and its
stream's reconnects."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from faas.v1 import common_pb2
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.common.metrics import LATENCY_BUCKETS, cause_label
from services.common.pool import Outcome

__all__ = ["WorkerMetrics"]

_STATUS: dict[int, str] = {
    common_pb2.TASK_STATUS_COMPLETED: "COMPLETED",
    common_pb2.TASK_STATUS_FAILED: "FAILED",
}


def _cause(outcome: Outcome) -> str:
    if outcome.status == common_pb2.TASK_STATUS_COMPLETED or not outcome.cause:
        return ""
    try:
        return cause_label(common_pb2.FailureCause.Name(outcome.cause))  # type: ignore[arg-type]
    except ValueError:
        return ""


class WorkerMetrics:
    """The worker's metrics, in a registry of their own; ``processes`` says the pool's size."""

    def __init__(self, processes: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tasks = Counter(
            "faas_worker_tasks_total",
            "Attempts this worker's processes ended, by status and failure cause",
            ["status", "cause"],
            registry=r,
        )
        self.run_time = Histogram(
            "faas_worker_task_run_seconds",
            "Attempts' time from their process starting them to their outcome",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reconnects = Counter(
            "faas_worker_stream_reconnects_total",
            "Times the worker connected to the dispatcher again after its stream ended",
            registry=r,
        )
        self._connected_once = False
        # attempt_id -> when (monotonic) a process started it, until its outcome.
        self._running: dict[str, float] = {}
        r.register(_PoolCollector(processes, self._running))

    def connected(self) -> None:
        """The dispatcher welcomed the worker: a reconnect unless it is the first time."""
        if self._connected_once:
            self.reconnects.inc()
        self._connected_once = True

    def started(self, attempt_ids: list[str]) -> None:
        now = time.monotonic()
        for attempt_id in attempt_ids:
            self._running[attempt_id] = now

    def ended(self, outcome: Outcome) -> None:
        status = _STATUS.get(outcome.status, "FAILED")
        self.tasks.labels(status, _cause(outcome)).inc()
        started = self._running.pop(outcome.attempt_id, None)
        if started is not None:
            self.run_time.observe(time.monotonic() - started)


class _PoolCollector(Collector):
    def __init__(self, processes: Callable[[], int], running: dict[str, float]) -> None:
        self._processes = processes
        self._running = running

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        size = self._processes()
        yield GaugeMetricFamily("faas_worker_processes", "Task processes", value=size)
        yield GaugeMetricFamily(
            "faas_worker_busy_processes",
            "Task processes running an attempt",
            value=min(len(self._running), size),
        )
