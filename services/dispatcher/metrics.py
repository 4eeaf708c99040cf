"""The dispatcher's Prometheus metrics: starts, outcomes, the queue, the workers, Redis.

Starts are counted as workers report them. Outcomes are counted where the engine announces a
terminal state to the gateways, as stored (see :class:`MeteredEvents`), so every path to a
terminal state (outcomes, lost workers, tasks no worker can take) is counted once, with the times
Redis recorded. Gauges are read from the scheduler when scraped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.common.metrics import LATENCY_BUCKETS, cause_label, queue_ages
from services.common.store import TaskRecord

from . import backoff
from .events import GatewayEvents
from .scheduler import Scheduler

__all__ = ["DispatcherMetrics", "MeteredEvents"]

_SERVICE = "dispatcher"


class DispatcherMetrics:
    """The dispatcher's metrics, in a registry of their own."""

    def __init__(self, scheduler: Scheduler, slow_wait_seconds: float) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.started = Counter(
            "faas_tasks_started_total",
            "Attempts a worker's process started (a task requeued after its worker was lost "
            "starts again)",
            registry=r,
        )
        self.finished = Counter(
            "faas_tasks_finished_total",
            "Tasks that reached a terminal state, by status and failure cause "
            '(cause="" when COMPLETED)',
            ["status", "cause"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "faas_queue_wait_seconds",
            "Finished tasks' time from creation to their (last) start",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.run_time = Histogram(
            "faas_task_run_seconds",
            "Finished tasks' time from their (last) start to their end",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "faas_task_latency_seconds",
            "Finished tasks' time from creation to their end",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.connects = Counter(
            "faas_worker_connects_total", "Worker streams that opened (hello accepted)", registry=r
        )
        self.disconnects = Counter(
            "faas_worker_disconnects_total", "Worker streams that ended", registry=r
        )
        r.register(_StateCollector(scheduler, slow_wait_seconds))

    def events(self) -> MeteredEvents:
        """The gateways' events, counted on their way."""
        return MeteredEvents(self)

    def record_finished(self, record: TaskRecord) -> None:
        """A terminal state as stored: counted, and its durations observed."""
        self.finished.labels(record.status, cause_label(record.cause)).inc()
        created, started, finished = record.created_ms, record.started_ms, record.finished_ms
        if started and created:
            self.queue_wait.observe(max(started - created, 0) / 1000)
        if started and finished:
            self.run_time.observe(max(finished - started, 0) / 1000)
        if created and finished:
            self.latency.observe(max(finished - created, 0) / 1000)


class MeteredEvents(GatewayEvents):
    """The gateways' events, each terminal state counted before it is sent."""

    def __init__(self, metrics: DispatcherMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def emit_state(self, record: TaskRecord) -> None:
        self._metrics.record_finished(record)
        super().emit_state(record)


class _StateCollector(Collector):
    """The gauges, read from the scheduler at each scrape (on the event loop)."""

    def __init__(self, scheduler: Scheduler, slow_wait_seconds: float) -> None:
        self._scheduler = scheduler
        self._slow = slow_wait_seconds

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the families are collected at each scrape

    def collect(self) -> Iterator[Metric]:
        scheduler = self._scheduler
        sessions = list(scheduler.sessions.values())
        ages = queue_ages(time.monotonic(), scheduler.queued_times(), self._slow)
        yield GaugeMetricFamily(
            "faas_queue_depth",
            "QUEUED tasks waiting in the dispatcher's queue (not yet given to a worker)",
            value=scheduler.queued_count(),
        )
        yield GaugeMetricFamily(
            "faas_queue_oldest_age_seconds",
            "How long the longest-waiting queued task has waited since it was queued (0: none)",
            value=ages.oldest_seconds,
        )
        yield GaugeMetricFamily(
            "faas_tasks_waiting_too_long",
            f"Queued tasks waiting longer than --slow-wait-seconds ({self._slow:g} s)",
            value=ages.slow,
        )
        yield GaugeMetricFamily(
            "faas_workers_connected", "Worker sessions connected", value=len(sessions)
        )
        yield GaugeMetricFamily(
            "faas_worker_capacity",
            "Processes of the connected workers, in total",
            value=sum(s.capacity for s in sessions),
        )
        in_flight = GaugeMetricFamily(
            "faas_tasks_in_flight",
            "Tasks each connected worker holds (running or prefetched)",
            labels=["worker"],
        )
        for session in sessions:
            in_flight.add_metric([session.worker_id], len(session.in_flight))
        yield in_flight
        outages = backoff.OUTAGES
        errors = CounterMetricFamily(
            "faas_redis_errors",
            "Redis calls that failed: Redis unreachable, timed out or refusing",
            labels=["service"],
        )
        errors.add_metric([_SERVICE], outages.errors)
        yield errors
        retries = CounterMetricFamily(
            "faas_redis_retries",
            "Redis calls tried again after Redis was unreachable or timed out",
            labels=["service"],
        )
        retries.add_metric([_SERVICE], outages.retries)
        yield retries
