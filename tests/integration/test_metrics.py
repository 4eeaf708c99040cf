"""Prometheus metrics of a running platform after a known workload: scraped and parsed with
prometheus_client's own parser, then scraped by a real Prometheus server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dill
import grpc
import httpx
import pytest
from faas.v1 import common_pb2, gateway_pb2
from prometheus_client.parser import text_string_to_metric_families

from services.launcher import Platform, PlatformConfig
from services.launcher.redis_server import free_port
from tests.integration.conftest import PlatformFactory
from tests.support import GrpcClient, wait_until

PROMETHEUS = "/usr/bin/prometheus"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# The workload: what each function's tasks end as.
COMPLETED, RAISED, TIMED_OUT = 20, 3, 2
SUBMITTED = COMPLETED + RAISED + TIMED_OUT
WORKERS, PROCESSES = 2, 2


def _square(x: int) -> int:
    return x * x


def _fail(x: int) -> int:
    raise ValueError(f"bad input {x}")


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def scrape(url: str) -> Samples:
    """Every sample at ``url``, by name and labels, as prometheus_client parses it."""
    reply = httpx.get(url, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when absent, as Prometheus counts it)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform with metrics on (free ports) that ran the known workload to its end."""
    root = tmp_path_factory.mktemp("metrics")
    platform = Platform(
        PlatformConfig(
            workers=WORKERS,
            worker_processes=PROCESSES,
            gateway_port=0,
            dispatcher_port=0,
            rest_port=0,
            metrics_port=0,
            data_dir=root / "data",
            log_dir=root / "logs",
        )
    )
    platform.start()
    try:
        client = GrpcClient(platform)
        square, fail = client.register(_square), client.register(_fail)
        sleep = client.register(_sleep, timeout=1)
        ids = client.submit(square, [(i,) for i in range(COMPLETED)])
        ids += client.submit(fail, [(i,) for i in range(RAISED)])
        ids += client.submit(sleep, [(60,)] * TIMED_OUT)
        with pytest.raises(grpc.RpcError) as refused:  # an unknown function: nothing stored
            client.stub.ExecuteFunction(
                gateway_pb2.ExecuteFunctionRequest(
                    function_id=str(uuid.uuid4()), payload=dill.dumps(((1,), {}))
                ),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        states = client.wait_all(ids)
        assert len(states) == SUBMITTED
        client.channel.close()
        # The dispatcher counts a task when it announces its stored state, just after storing it.
        url = platform.metrics_urls["dispatcher"]
        wait_until(
            lambda: total(scrape(url), "faas_tasks_finished_total") == SUBMITTED,
            30,
            "the dispatcher to count every finished task",
        )
        yield platform
    finally:
        platform.stop()


def test_every_part_serves_its_metrics_and_the_counts_match_the_workload(
    workload: Platform,
) -> None:
    urls = workload.metrics_urls
    assert len(urls) == 2 + WORKERS

    gateway = scrape(urls["gateway"])
    assert value(gateway, "faas_tasks_submitted_total") == SUBMITTED
    assert value(gateway, "faas_functions_registered_total") == 3
    assert value(gateway, "faas_gateway_requests_total", method="RegisterFunction", code="OK") == 3
    assert value(gateway, "faas_gateway_requests_total", method="ExecuteBatch", code="OK") == 3
    refused = value(
        gateway, "faas_gateway_requests_total", method="ExecuteFunction", code="NOT_FOUND"
    )
    assert refused == 1
    assert value(gateway, "faas_redis_errors_total", service="gateway") == 0

    dispatcher = scrape(urls["dispatcher"])
    finished = {
        labels: v for (n, labels), v in dispatcher.items() if n == "faas_tasks_finished_total"
    }
    assert finished == {
        (("cause", ""), ("status", "COMPLETED")): COMPLETED,
        (("cause", "RAISED"), ("status", "FAILED")): RAISED,
        (("cause", "TIMEOUT"), ("status", "FAILED")): TIMED_OUT,
    }
    assert value(dispatcher, "faas_tasks_started_total") == SUBMITTED
    for histogram in ("faas_queue_wait_seconds", "faas_task_run_seconds"):
        assert value(dispatcher, f"{histogram}_count") == SUBMITTED
        assert value(dispatcher, f"{histogram}_bucket", le="+Inf") == SUBMITTED
    assert value(dispatcher, "faas_task_latency_seconds_count") == SUBMITTED
    # The two timed-out tasks ran at least about their 1 s timeout.
    assert value(dispatcher, "faas_task_run_seconds_sum") >= TIMED_OUT * 0.9
    assert value(dispatcher, "faas_queue_depth") == 0
    assert value(dispatcher, "faas_queue_oldest_age_seconds") == 0
    assert value(dispatcher, "faas_tasks_waiting_too_long") == 0
    assert value(dispatcher, "faas_workers_connected") == WORKERS
    assert value(dispatcher, "faas_worker_capacity") == WORKERS * PROCESSES
    in_flight = {
        dict(labels)["worker"]: v
        for (n, labels), v in dispatcher.items()
        if n == "faas_tasks_in_flight"
    }
    assert in_flight == {worker.name: 0 for worker in workload.workers}
    assert value(dispatcher, "faas_worker_connects_total") == WORKERS
    assert value(dispatcher, "faas_worker_disconnects_total") == 0
    assert value(dispatcher, "faas_redis_errors_total", service="dispatcher") == 0
    assert value(dispatcher, "faas_redis_retries_total", service="dispatcher") == 0

    workers = [scrape(urls[worker.name]) for worker in workload.workers]
    by_outcome = {
        (status, cause): sum(
            value(w, "faas_worker_tasks_total", status=status, cause=cause) for w in workers
        )
        for status, cause in (("COMPLETED", ""), ("FAILED", "RAISED"), ("FAILED", "TIMEOUT"))
    }
    assert by_outcome == {
        ("COMPLETED", ""): COMPLETED,
        ("FAILED", "RAISED"): RAISED,
        ("FAILED", "TIMEOUT"): TIMED_OUT,
    }
    assert sum(total(w, "faas_worker_tasks_total") for w in workers) == SUBMITTED
    assert sum(value(w, "faas_worker_task_run_seconds_count") for w in workers) == SUBMITTED
    for w in workers:
        assert value(w, "faas_worker_processes") == PROCESSES
        assert value(w, "faas_worker_busy_processes") == 0
        assert value(w, "faas_worker_stream_reconnects_total") == 0


def test_a_metrics_port_serves_only_get_metrics(workload: Platform) -> None:
    url = workload.metrics_urls["gateway"]
    assert httpx.get(url.replace("/metrics", "/other"), timeout=10).status_code == 404
    assert httpx.post(url, timeout=10).status_code == 405
    head = httpx.head(url, timeout=10)
    assert head.status_code == 200 and head.content == b""
    with httpx.Client(timeout=10) as keep_alive:  # one connection, several scrapes
        for _ in range(3):
            assert "faas_tasks_submitted_total" in keep_alive.get(url).text


def _prometheus_or_skip() -> None:
    if Path(PROMETHEUS).exists():
        return
    reason = f"{PROMETHEUS} is missing (Debian package prometheus; `make system-deps`)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must have it")
    pytest.skip(reason)


def test_a_prometheus_server_scrapes_every_part(workload: Platform, tmp_path: Path) -> None:
    _prometheus_or_skip()
    targets = [
        url.removeprefix("http://").removesuffix("/metrics")
        for url in workload.metrics_urls.values()
    ]
    config = tmp_path / "prometheus.yml"
    config.write_text(  # JSON is YAML
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                "scrape_configs": [{"job_name": "faas", "static_configs": [{"targets": targets}]}],
            }
        )
    )
    port = free_port("127.0.0.1")
    api = f"http://127.0.0.1:{port}/api/v1"
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def all_up() -> bool:
            assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                reply = httpx.get(f"{api}/targets", timeout=5)
            except httpx.HTTPError:
                return False
            if reply.status_code != 200:  # 503 until the server is ready
                return False
            active = reply.json()["data"]["activeTargets"]
            return len(active) == len(targets) and all(t["health"] == "up" for t in active)

        wait_until(all_up, 60, "Prometheus to scrape every part", interval=0.5)

        def query(expression: str) -> dict[str, float]:
            reply = httpx.get(f"{api}/query", params={"query": expression}, timeout=5).json()
            assert reply["status"] == "success", reply
            return {
                ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())): float(r["value"][1])
                for r in reply["data"]["result"]
            }

        finished = "sum by (status, cause) (faas_tasks_finished_total)"
        wait_until(lambda: bool(query(finished)), 30, "the finished tasks in Prometheus")
        assert query(finished) == {
            "status=COMPLETED": COMPLETED,  # Prometheus drops an empty label
            "cause=RAISED,status=FAILED": RAISED,
            "cause=TIMEOUT,status=FAILED": TIMED_OUT,
        }
        assert query("sum(faas_tasks_submitted_total)") == {"": SUBMITTED}
        assert query("sum(faas_worker_tasks_total)") == {"": SUBMITTED}
        assert query("faas_workers_connected") == {
            f"__name__=faas_workers_connected,instance={targets[1]},job=faas": WORKERS
        }
        assert query("count(up == 1)") == {"": len(targets)}
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(tmp_path / "tsdb", ignore_errors=True)


def test_tasks_waiting_too_long_show_in_the_gauges_until_a_worker_takes_them(
    make_platform: PlatformFactory,
) -> None:
    """No silent stalls: with no worker, queued tasks age past --slow-wait-seconds and are
    counted; a worker that joins takes them and the gauges fall back to 0."""
    platform = make_platform(workers=0, metrics_port=0, extra_env={"FAAS_SLOW_WAIT_SECONDS": "0.5"})
    url = platform.metrics_urls["dispatcher"]
    client = GrpcClient(platform)
    try:
        ids = client.submit(client.register(_square), [(i,) for i in range(3)])

        def stalled() -> bool:
            found = scrape(url)
            return value(found, "faas_tasks_waiting_too_long") == 3

        wait_until(stalled, 30, "the queued tasks to count as waiting too long")
        found = scrape(url)
        assert value(found, "faas_queue_depth") == 3
        assert value(found, "faas_queue_oldest_age_seconds") > 0.5
        assert value(found, "faas_workers_connected") == 0
        platform.add_worker()
        assert [s.status for s in client.wait_all(ids)] == [common_pb2.TASK_STATUS_COMPLETED] * 3
        found = scrape(url)
        assert value(found, "faas_queue_depth") == 0
        assert value(found, "faas_tasks_waiting_too_long") == 0
        assert value(found, "faas_queue_oldest_age_seconds") == 0
        assert value(found, "faas_workers_connected") == 1
        assert value(found, "faas_queue_wait_seconds_sum") > 3 * 0.5
    finally:
        client.channel.close()
