"""Why is it waiting (issue 13): every task that has not ended says why and since when, over
gRPC (GetStatus, GetResult) and REST (the ``waiting`` field of /status and /result)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from typing import Any

import dill
import pytest
from faas.v1 import common_pb2, gateway_pb2

from services.launcher.platform import Platform
from tests.support import GrpcClient, RestClient, wait_until

pytestmark = pytest.mark.integration

QUEUED = common_pb2.TASK_STATUS_QUEUED


def _sleep(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def _status(client: GrpcClient, task_id: str) -> gateway_pb2.GetStatusResponse:
    reply: gateway_pb2.GetStatusResponse = client.stub.GetStatus(
        gateway_pb2.GetStatusRequest(task_id=task_id), timeout=10
    )
    return reply


def _reason(client: GrpcClient, task_id: str) -> str:
    return common_pb2.WaitReason.Name(_status(client, task_id).wait_reason)


def _waiting(rest: RestClient, task_id: str) -> Any:
    return rest.http.get(f"/status/{task_id}").json().get("waiting")


def _until_reason(client: GrpcClient, task_id: str, reason: str, timeout: float = 30) -> None:
    wait_until(lambda: _reason(client, task_id) == reason, timeout, f"{task_id} {reason}")


def test_no_workers_then_a_worker_joins(make_platform) -> None:  # type: ignore[no-untyped-def]
    platform: Platform = make_platform(workers=0, worker_processes=1)
    client = GrpcClient(platform)
    rest = RestClient(platform.rest_url)
    try:
        (task_id,) = client.submit(client.register(_sleep), [(0.0,)])
        _until_reason(client, task_id, "WAIT_REASON_NO_WORKERS")
        reply = _status(client, task_id)
        assert reply.status == common_pb2.TASK_STATUS_QUEUED
        assert reply.wait_message == "no worker is connected"
        state = client.state(task_id)
        assert state.wait_reason == common_pb2.WAIT_REASON_NO_WORKERS
        assert state.wait_since.ToMilliseconds() == state.created_time.ToMilliseconds()
        body = _waiting(rest, task_id)
        assert body["reason"] == "NO_WORKERS" and body["since"]
        assert rest.http.get(f"/result/{task_id}").json()["waiting"]["reason"] == "NO_WORKERS"

        platform.add_worker()
        (done,) = client.wait_all([task_id], timeout=60)
        assert done.status == common_pb2.TASK_STATUS_COMPLETED
        assert done.wait_reason == common_pb2.WAIT_REASON_UNSPECIFIED
        assert "waiting" not in rest.http.get(f"/status/{task_id}").json()
    finally:
        rest.close()


def test_busy_running_silent_worker_and_labels(make_platform) -> None:  # type: ignore[no-untyped-def]
    # A worker is dead only after 120 missed heartbeats: its stopped agent stays "late".
    platform: Platform = make_platform(
        worker_processes=1, extra_env={"FAAS_MISSED_HEARTBEATS": "120"}
    )
    client = GrpcClient(platform)
    rest = RestClient(platform.rest_url)
    worker = platform.workers[0]
    stopped = False
    try:
        function_id = client.register(_sleep)
        (long_task,) = client.submit(function_id, [(600.0,)])  # ends with the platform
        _until_reason(client, long_task, "WAIT_REASON_RUNNING")
        running = _status(client, long_task)
        assert running.worker_id == worker.name
        assert running.heartbeat_age.ToTimedelta().total_seconds() < 3
        body = _waiting(rest, long_task)
        assert body["reason"] == "RUNNING" and body["worker_id"] == worker.name
        assert 0 <= body["heartbeat_age_seconds"] < 3

        (next_task,) = client.submit(function_id, [(0.0,)])
        _until_reason(client, next_task, "WAIT_REASON_WORKERS_BUSY")
        wait_until(  # once the dispatcher's report has the long task's slot taken
            lambda: (
                _status(client, next_task).wait_message == "every worker is busy (1 of 1 processes)"
            ),
            30,
            "every worker busy",
        )

        request = gateway_pb2.ExecuteFunctionRequest(
            function_id=function_id, payload=dill.dumps(((0.0,), {}))
        )
        request.placement.labels["gpu"] = "h200"
        labelled = client.stub.ExecuteFunction(request, timeout=10).task_id
        _until_reason(client, labelled, "WAIT_REASON_NO_MATCHING_WORKER")
        assert "gpu" in _status(client, labelled).wait_message

        worker.send_signal(signal.SIGSTOP)
        stopped = True
        _until_reason(client, long_task, "WAIT_REASON_WORKER_SILENT")
        first = _status(client, long_task).heartbeat_age.ToTimedelta().total_seconds()
        assert first >= 3
        wait_until(
            lambda: (
                _status(client, long_task).heartbeat_age.ToTimedelta().total_seconds() > first + 1
            ),
            30,
            "a growing heartbeat age",
        )
        assert _waiting(rest, long_task)["reason"] == "WORKER_SILENT"
        worker.send_signal(signal.SIGCONT)
        stopped = False
        # Back, it reconnects (the dispatcher was silent to it): no longer a silent worker.
        wait_until(
            lambda: _reason(client, long_task) != "WAIT_REASON_WORKER_SILENT",
            30,
            "the worker heard from again",
        )
    finally:
        if stopped:
            worker.send_signal(signal.SIGCONT)
        rest.close()


def test_silent_dispatcher(make_platform) -> None:  # type: ignore[no-untyped-def]
    platform: Platform = make_platform(workers=0)
    client = GrpcClient(platform)
    function_id = client.register(_sleep)
    (before,) = client.submit(function_id, [(0.0,)])
    _until_reason(client, before, "WAIT_REASON_NO_WORKERS")
    platform.dispatcher.stop()
    started = time.monotonic()
    _until_reason(client, before, "WAIT_REASON_DISPATCHER_SILENT")
    assert time.monotonic() - started < 30
    assert "dispatcher has not reported" in _status(client, before).wait_message


def test_local_mode_running_task_is_not_silent(make_platform) -> None:  # type: ignore[no-untyped-def]
    platform: Platform = make_platform(mode="local", worker_processes=1)
    client = GrpcClient(platform)
    (task_id,) = client.submit(client.register(_sleep), [(600.0,)])  # ends with the platform
    _until_reason(client, task_id, "WAIT_REASON_RUNNING")
    started = time.monotonic()
    # Past the silence threshold (3 s): the dispatcher's own processes are heard from.
    wait_until(lambda: time.monotonic() - started > 4, 10, "4 s running")
    reply = _status(client, task_id)
    assert reply.wait_reason == common_pb2.WAIT_REASON_RUNNING, reply.wait_message
    assert reply.heartbeat_age.ToTimedelta().total_seconds() < 3
    (stats,) = client.workers().values()
    assert stats.heartbeat_age.ToTimedelta().total_seconds() < 3


def test_a_watch_streams_each_new_reason_to_wait(make_platform) -> None:  # type: ignore[no-untyped-def]
    """WatchTask sends a task's state again when the reason it waits changes, not only its
    status, and `faas watch` prints each: no worker, then a worker without its label, then one
    with it (the task runs, and the watch ends with it)."""
    platform: Platform = make_platform(workers=0, worker_processes=1)
    client = GrpcClient(platform)
    request = gateway_pb2.ExecuteFunctionRequest(
        function_id=client.register(_sleep), payload=dill.dumps(((0.0,), {}))
    )
    request.placement.labels["gpu"] = "h200"
    task_id = client.stub.ExecuteFunction(request, timeout=10).task_id
    _until_reason(client, task_id, "WAIT_REASON_NO_WORKERS")
    stream = client.stub.WatchTask(gateway_pb2.WatchTaskRequest(task_id=task_id), timeout=120)
    cli = subprocess.Popen(
        [sys.executable, "-m", "faas", "watch", task_id],
        env={**os.environ, "FAAS_TARGET": platform.gateway_target},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = [next(stream).task]
        assert (seen[0].status, seen[0].wait_reason) == (QUEUED, common_pb2.WAIT_REASON_NO_WORKERS)
        platform.add_worker()  # no gpu label
        while seen[-1].wait_reason != common_pb2.WAIT_REASON_NO_MATCHING_WORKER:
            seen.append(next(stream).task)  # within the gateway's recheck (2 s)
        assert all(state.status == QUEUED for state in seen)
        assert "gpu" in seen[-1].wait_message
        reasons = [state.wait_reason for state in seen]
        assert all(a != b for a, b in itertools.pairwise(reasons)), reasons  # each one news

        gpu = platform.new_worker(1)
        gpu.argv += ["--label", "gpu=h200"]
        gpu.start()
        ended = [state.task for state in stream][-1]
        assert ended.status == common_pb2.TASK_STATUS_COMPLETED and ended.worker_id == gpu.name
        out, err = cli.communicate(timeout=60)
    finally:
        stream.cancel()
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, err
    lines = out.splitlines()
    assert "NO_WORKERS: no worker is connected" in lines[0], out
    assert any("NO_MATCHING_WORKER" in line and "gpu" in line for line in lines), out
    assert "COMPLETED" in lines[-2] and lines[-1] == "0.0", out
