"""Why is it waiting (issue 13): every task that has not ended says why and since when, over
gRPC (GetStatus, GetResult) and REST (the ``waiting`` field of /status and /result)."""

from __future__ import annotations

import signal
import time
from typing import Any

import dill
import pytest
from faas.v1 import common_pb2, gateway_pb2

from services.launcher.platform import Platform
from tests.support import GrpcClient, RestClient, wait_until

pytestmark = pytest.mark.integration


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
