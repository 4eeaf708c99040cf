"""Per-task limits through a real platform: memory, CPU time and the default timeout.

Over a limit the task FAILS with a cause of its own, and the worker serves on.
"""

from __future__ import annotations

import pickle

import dill
import pytest
from faas.v1 import common_pb2, gateway_pb2

from tests.integration import limits_tasks
from tests.integration.conftest import PlatformFactory
from tests.support import GrpcClient, RestClient

GIB = 1024**3
FAILED = common_pb2.TASK_STATUS_FAILED
COMPLETED = common_pb2.TASK_STATUS_COMPLETED


def run_one(client: GrpcClient, function_id: str, *args: object) -> common_pb2.TaskState:
    [task_id] = client.submit(function_id, [args])
    [state] = client.wait_all([task_id], timeout=120)
    return state


@pytest.mark.parametrize("mode", ["push", "local"])
def test_a_task_over_the_memory_limit_fails_and_the_worker_serves_on(
    make_platform: PlatformFactory, mode: str
) -> None:
    platform = make_platform(mode=mode, worker_processes=1)  # the default limit: 4096 MiB
    client = GrpcClient(platform)
    allocate = client.register(limits_tasks.allocate)
    pid = client.register(limits_tasks.pid)
    before = run_one(client, pid)
    assert before.status == COMPLETED, before.error.message
    state = run_one(client, allocate, 6 * GIB)
    assert state.status == FAILED
    assert state.error.cause == common_pb2.FAILURE_CAUSE_MEMORY_LIMIT, state.error.message
    assert "memory limit of 4096 MiB" in state.error.message
    assert "--max-task-memory-mb" in state.error.message
    assert isinstance(pickle.loads(state.result), MemoryError)
    after = run_one(client, pid)  # the same process serves on
    assert after.status == COMPLETED, after.error.message
    assert pickle.loads(after.result) == pickle.loads(before.result)
    fits = run_one(client, allocate, 256 * 1024 * 1024)
    assert fits.status == COMPLETED, fits.error.message


def test_a_task_over_the_cpu_limit_fails_and_the_worker_serves_on(
    make_platform: PlatformFactory,
) -> None:
    platform = make_platform(worker_processes=1, extra_env={"FAAS_MAX_TASK_CPU_SECONDS": "2"})
    client = GrpcClient(platform)
    spin = client.register(limits_tasks.spin)
    short = run_one(client, spin, 0.5)
    assert short.status == COMPLETED, short.error.message
    state = run_one(client, spin, 120)
    assert state.status == FAILED
    assert state.error.cause == common_pb2.FAILURE_CAUSE_CPU_LIMIT, state.error.message
    assert "CPU time limit of 2 s" in state.error.message
    again = run_one(client, spin, 0.5)  # on the replacement process
    assert again.status == COMPLETED, again.error.message
    assert len(client.workers()) == 1


def test_a_task_without_a_timeout_gets_the_platform_default(
    make_platform: PlatformFactory,
) -> None:
    platform = make_platform(extra_env={"FAAS_DEFAULT_TASK_TIMEOUT_SECONDS": "2"})
    client = GrpcClient(platform)
    unlimited = client.register(limits_tasks.nap)
    state = run_one(client, unlimited, 60)
    assert state.status == FAILED
    assert state.error.cause == common_pb2.FAILURE_CAUSE_TIMEOUT, state.error.message
    assert "time limit of 2 s" in state.error.message
    rest = RestClient(platform.rest_url)  # ExecuteFunction, through the unchanged REST contract
    try:
        body = rest.wait_result(rest.execute(unlimited, 60), timeout=120)
    finally:
        rest.close()
    assert (body["status"], body["error"]["cause"]) == ("FAILED", "TIMEOUT"), body
    # A function's own timeout wins over the default.
    patient = client.register(limits_tasks.nap, timeout=60)
    rested = run_one(client, patient, 3)
    assert rested.status == COMPLETED, rested.error.message
    assert pickle.loads(rested.result) == "rested"


@pytest.mark.parametrize("mode", ["push", "local"])
def test_limits_set_per_function_and_per_execution(
    make_platform: PlatformFactory, mode: str
) -> None:
    platform = make_platform(mode=mode, worker_processes=1)
    rest = RestClient(platform.rest_url)
    client = GrpcClient(platform)
    try:
        # Over REST, with plain dill: the function's tasks may map 256 MiB each.
        limited = rest.register(
            limits_tasks.allocate, "allocate", placement={"memory_limit_mb": 256}
        )
        shown = rest.http.get(f"/functions/{limited}").json()
        assert shown["placement"]["memory_limit_mb"] == 256, shown
        body = rest.wait_result(rest.execute(limited, GIB), timeout=120)
        assert body["status"] == "FAILED", body
        assert "memory limit of 256 MiB (its memory_limit_mb)" in body["error"]["message"], body
        assert body["error"]["cause"] == "MEMORY_LIMIT", body
        # One execution's own limit replaces the function's: 2 GiB lets 1 GiB through.
        request = gateway_pb2.ExecuteFunctionRequest(
            function_id=limited,
            payload=dill.dumps(((GIB,), {})),
            placement=common_pb2.Placement(memory_limit_mb=2048),
        )
        task_id = client.stub.ExecuteFunction(request, timeout=30).task_id
        [state] = client.wait_all([task_id])
        assert state.status == COMPLETED, state.error.message
        assert pickle.loads(state.result) == GIB
        # A CPU limit of one execution: 1 s of a 120 s spin.
        spin = client.register(limits_tasks.spin)
        request = gateway_pb2.ExecuteFunctionRequest(
            function_id=spin,
            payload=dill.dumps(((120,), {})),
            placement=common_pb2.Placement(cpu_limit_seconds=1),
        )
        task_id = client.stub.ExecuteFunction(request, timeout=30).task_id
        [state] = client.wait_all([task_id])
        assert state.status == FAILED
        assert state.error.cause == common_pb2.FAILURE_CAUSE_CPU_LIMIT, state.error.message
        assert "CPU time limit of 1 s (its cpu_limit_seconds)" in state.error.message
        [again] = client.wait_all(client.submit(spin, [(0.5,)]))  # no limit of its own: runs
        assert again.status == COMPLETED, again.error.message
        # Bad limits are refused, and store nothing.
        bad = rest.http.post(
            "/register_function",
            json={"name": "f", "payload": "eA==", "placement": {"cpu_limit_seconds": -1}},
        )
        assert bad.status_code == 422, bad.text
        assert "detail" in bad.json()
    finally:
        rest.close()
