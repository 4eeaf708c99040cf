"""The metrics' pure parts: queue ages, what a finished task adds, the gauges read from the
scheduler, the worker's and the gateway's counting. No network: registries are read directly."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from faas.v1 import common_pb2
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.common.errors import StoreUnavailable
from services.common.grpc_server import PortInUse
from services.common.metrics import cause_label, queue_ages, serve_metrics
from services.common.pool import Outcome
from services.common.store import TaskRecord
from services.dispatcher.metrics import DispatcherMetrics
from services.dispatcher.scheduler import Scheduler, Session, Task
from services.gateway.metrics import GatewayMetrics
from services.worker.metrics import WorkerMetrics


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What a scrape of ``registry`` shows, parsed as Prometheus's text format."""
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_queue_ages_give_the_oldest_and_how_many_wait_too_long() -> None:
    ages = queue_ages(100.0, [99.0, 60.0, 95.0, 69.0], slow_after=30)
    assert ages.oldest_seconds == 40.0
    assert ages.slow == 2  # 40 s and 31 s; 30 s exactly is not "longer than"
    assert queue_ages(100.0, [70.0], slow_after=30).slow == 0


def test_queue_ages_of_an_empty_queue_are_zero_and_never_negative() -> None:
    empty = queue_ages(5.0, [], slow_after=1)
    assert (empty.oldest_seconds, empty.slow) == (0.0, 0)
    assert queue_ages(5.0, [6.0], slow_after=1).oldest_seconds == 0.0  # a clock read late


def test_cause_label_is_the_stored_name() -> None:
    assert cause_label("TIMEOUT") == "TIMEOUT"
    assert cause_label("FAILURE_CAUSE_RAISED") == "RAISED"
    assert cause_label("") == ""


def _record(status: str, cause: str, created: int, started: int, finished: int) -> TaskRecord:
    return TaskRecord("t", "f", status, b"", cause, "", "", 1, "w", created, started, finished)


def test_a_finished_task_counts_by_status_and_cause_with_its_durations() -> None:
    metrics = DispatcherMetrics(Scheduler("push"), slow_wait_seconds=30)
    metrics.record_finished(_record("COMPLETED", "", 1_000, 1_250, 3_250))
    metrics.record_finished(_record("FAILED", "TIMEOUT", 1_000, 2_000, 4_000))
    # Never started (no worker could take it): counted, with its latency only.
    metrics.record_finished(_record("FAILED", "NO_COMPATIBLE_WORKER", 1_000, 0, 61_000))
    found = samples(metrics.registry)
    finished = "faas_tasks_finished_total"
    assert found[finished, (("cause", ""), ("status", "COMPLETED"))] == 1
    assert found[finished, (("cause", "TIMEOUT"), ("status", "FAILED"))] == 1
    assert found[finished, (("cause", "NO_COMPATIBLE_WORKER"), ("status", "FAILED"))] == 1
    assert found["faas_queue_wait_seconds_count", ()] == 2
    assert found["faas_queue_wait_seconds_sum", ()] == pytest.approx(0.25 + 1.0)
    assert found["faas_task_run_seconds_count", ()] == 2
    assert found["faas_task_run_seconds_sum", ()] == pytest.approx(2.0 + 2.0)
    assert found["faas_task_latency_seconds_count", ()] == 3
    assert found["faas_task_latency_seconds_sum", ()] == pytest.approx(2.25 + 3.0 + 60.0)
    assert found["faas_queue_wait_seconds_bucket", (("le", "0.25"),)] == 1


def test_the_events_count_each_terminal_state_once() -> None:
    metrics = DispatcherMetrics(Scheduler("push"), slow_wait_seconds=30)
    events = metrics.events()
    events.emit_state(_record("COMPLETED", "", 1, 2, 3))
    events.emit("t", common_pb2.TASK_STATUS_RUNNING)  # a start is counted where it is reported
    found = samples(metrics.registry)
    assert found["faas_tasks_finished_total", (("cause", ""), ("status", "COMPLETED"))] == 1
    assert found["faas_tasks_started_total", ()] == 0


def test_the_gauges_read_the_queue_and_the_sessions() -> None:
    scheduler = Scheduler("push")
    metrics = DispatcherMetrics(scheduler, slow_wait_seconds=30)
    empty = samples(metrics.registry)
    assert empty["faas_queue_depth", ()] == 0
    assert empty["faas_queue_oldest_age_seconds", ()] == 0
    assert empty["faas_workers_connected", ()] == 0
    for name in ("old", "new", "taken"):
        scheduler.add(Task(name, "f", b"", None))
    scheduler.tasks["old"].queued_at = time.monotonic() - 45  # queued 45 s ago
    scheduler.take(scheduler.tasks["taken"])  # given to a worker: no longer queued
    session = Session("w1", "host", 1, 4, "push")
    session.in_flight["attempt"] = scheduler.tasks["taken"]
    scheduler.attach(session)
    scheduler.attach(Session("w2", "host", 2, 2, "push"))
    found = samples(metrics.registry)
    assert found["faas_queue_depth", ()] == 2
    assert 45 <= found["faas_queue_oldest_age_seconds", ()] < 60
    assert found["faas_tasks_waiting_too_long", ()] == 1
    assert found["faas_workers_connected", ()] == 2
    assert found["faas_worker_capacity", ()] == 6
    assert found["faas_tasks_in_flight", (("worker", "w1"),)] == 1
    assert found["faas_tasks_in_flight", (("worker", "w2"),)] == 0


def test_registries_are_per_service_not_global() -> None:
    one, two = DispatcherMetrics(Scheduler("push"), 30), DispatcherMetrics(Scheduler("push"), 30)
    one.started.inc(3)
    assert samples(one.registry)["faas_tasks_started_total", ()] == 3
    assert samples(two.registry)["faas_tasks_started_total", ()] == 0


def _outcome(attempt: str, status: int, cause: int = 0) -> Outcome:
    return Outcome("t", attempt, status, b"", cause, "", "")


def test_the_worker_counts_outcomes_busy_processes_and_reconnects() -> None:
    metrics = WorkerMetrics(lambda: 2)
    metrics.connected()
    metrics.started(["a", "b"])
    assert samples(metrics.registry)["faas_worker_busy_processes", ()] == 2
    metrics.ended(_outcome("a", common_pb2.TASK_STATUS_COMPLETED))
    metrics.ended(_outcome("b", common_pb2.TASK_STATUS_FAILED, common_pb2.FAILURE_CAUSE_TIMEOUT))
    metrics.ended(_outcome("c", common_pb2.TASK_STATUS_FAILED, 999))  # unknown cause, no start
    metrics.connected()  # the stream came back
    found = samples(metrics.registry)
    assert found["faas_worker_tasks_total", (("cause", ""), ("status", "COMPLETED"))] == 1
    assert found["faas_worker_tasks_total", (("cause", "TIMEOUT"), ("status", "FAILED"))] == 1
    assert found["faas_worker_tasks_total", (("cause", ""), ("status", "FAILED"))] == 1
    assert found["faas_worker_task_run_seconds_count", ()] == 2
    assert found["faas_worker_busy_processes", ()] == 0
    assert found["faas_worker_processes", ()] == 2
    assert found["faas_worker_stream_reconnects_total", ()] == 1


def test_the_gateway_counts_calls_by_code_and_those_redis_failed() -> None:
    metrics = GatewayMetrics()
    metrics.answered("GetStatus", None, None)
    metrics.answered("GetStatus", grpc.StatusCode.NOT_FOUND, grpc.aio.AbortError())
    abort = grpc.aio.AbortError()
    abort.__context__ = StoreUnavailable("Redis is unavailable", "STORE_UNAVAILABLE")
    metrics.answered("ExecuteBatch", grpc.StatusCode.UNAVAILABLE, abort)
    found = samples(metrics.registry)
    requests = "faas_gateway_requests_total"
    assert found[requests, (("code", "OK"), ("method", "GetStatus"))] == 1
    assert found[requests, (("code", "NOT_FOUND"), ("method", "GetStatus"))] == 1
    assert found[requests, (("code", "UNAVAILABLE"), ("method", "ExecuteBatch"))] == 1
    assert found["faas_redis_errors_total", (("service", "gateway"),)] == 1


def test_a_taken_metrics_port_is_a_one_line_port_in_use() -> None:
    async def serve_twice() -> str:
        first = await serve_metrics(CollectorRegistry(), "127.0.0.1", 0, "test")
        assert first is not None
        try:
            with pytest.raises(PortInUse) as taken:
                await serve_metrics(CollectorRegistry(), "127.0.0.1", first.port, "test")
            return str(taken.value)
        finally:
            await first.close()

    message = asyncio.run(serve_twice())
    assert message.startswith("port ") and "(--metrics-port) cannot be bound" in message
    assert "\n" not in message
    assert asyncio.run(serve_metrics(CollectorRegistry(), "127.0.0.1", None, "test")) is None
