"""Worker labels, resources and runtimes: a task reaches only a worker that can run it (issue 10).

Two workers with different labels serve one dispatcher (push and pull); tasks that need a label,
a resource or a Python nobody has say why they wait, never block the others, and FAIL
NO_COMPATIBLE_WORKER after the dispatcher's (shortened) wait; local mode does the same.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from pathlib import Path

import dill
import grpc
import httpx
import pytest
from faas.v1 import common_pb2, gateway_pb2

from services.launcher import Platform, PlatformConfig
from tests.integration.conftest import PlatformFactory
from tests.support import TERMINAL_CODES, GrpcClient, wait_until

# How long the dispatcher lets a task wait for a compatible worker in these tests.
NO_WORKER_TIMEOUT = 5.0
ENV = {"FAAS_NO_WORKER_TIMEOUT_SECONDS": str(NO_WORKER_TIMEOUT)}
HERE = f"{platform.python_version_tuple()[0]}.{platform.python_version_tuple()[1]}"


def square(x: int) -> int:
    return x * x


class Routed:
    """A platform with a worker labelled gpu=h200 (1 gpu) and one labelled zone=b."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        gpu = platform.new_worker(2)
        gpu.argv += ["--label", "gpu=h200,zone=a", "--resource", "gpu=1"]
        gpu.start()
        cpu = platform.new_worker(2)
        cpu.env = {**cpu.env, "FAAS_LABELS": "zone=b", "FAAS_RESOURCES": "cpu=8"}
        cpu.start()
        self.gpu, self.cpu = gpu.name, cpu.name
        self.client = GrpcClient(platform)
        self.stub = self.client.stub

    def register(
        self,
        fn: object = square,
        *,
        placement: common_pb2.Placement | None = None,
        python: str = "",
    ) -> str:
        request = gateway_pb2.RegisterFunctionRequest(
            name="routed", payload=dill.dumps(fn), placement=placement
        )
        if python:
            request.runtime.python_version = python
        return str(self.stub.RegisterFunction(request, timeout=10).function_id)

    def submit(
        self, function_id: str, n: int, placement: common_pb2.Placement | None = None
    ) -> list[str]:
        request = gateway_pb2.ExecuteBatchRequest(
            function_id=function_id,
            payloads=[dill.dumps(((i,), {})) for i in range(n)],
            placement=placement,
        )
        return list(self.stub.ExecuteBatch(request, timeout=30).task_ids)

    def status(self, task_id: str) -> gateway_pb2.GetStatusResponse:
        return self.stub.GetStatus(gateway_pb2.GetStatusRequest(task_id=task_id), timeout=10)

    def pending(self, task_id: str, timeout: float = 30.0) -> str:
        """The task's pending reason once it has one (the task still QUEUED)."""
        found: list[str] = []

        def has_reason() -> bool:
            reply = self.status(task_id)
            assert reply.status == common_pb2.TASK_STATUS_QUEUED, reply
            found[:] = [reply.pending_reason]
            return bool(reply.pending_reason)

        wait_until(has_reason, timeout, f"a pending reason for {task_id}")
        return found[0]


@pytest.fixture(scope="module", params=["push", "pull"])
def routed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Routed]:
    root: Path = tmp_path_factory.mktemp(f"routing-{request.param}")
    platform = Platform(
        PlatformConfig(
            mode=request.param,
            workers=0,
            worker_processes=2,
            gateway_port=0,
            dispatcher_port=0,
            rest_port=0,
            data_dir=root / "data",
            log_dir=root / "logs",
            extra_env=ENV,
        )
    )
    platform.start()
    try:
        routed = Routed(platform)
        yield routed
        routed.client.channel.close()
    finally:
        platform.stop()


def _placement(**labels: str) -> common_pb2.Placement:
    return common_pb2.Placement(labels=labels)


def test_workers_show_their_runtime_labels_and_resources(routed: Routed) -> None:
    workers = routed.client.workers()
    gpu, cpu = workers[routed.gpu], workers[routed.cpu]
    assert dict(gpu.labels) == {"gpu": "h200", "zone": "a"}
    assert dict(gpu.resources) == {"gpu": 1.0}
    assert dict(cpu.labels) == {"zone": "b"}
    assert dict(cpu.resources) == {"cpu": 8.0}
    assert gpu.runtime.python_version == platform.python_version()
    assert gpu.runtime.dill_version == dill.__version__
    body = httpx.get(f"{routed.platform.rest_url}/workers", timeout=10).json()
    shown = {w["worker_id"]: w for w in body["workers"]}
    assert shown[routed.gpu]["labels"] == {"gpu": "h200", "zone": "a"}
    assert shown[routed.gpu]["resources"] == {"gpu": 1.0}
    assert shown[routed.cpu]["runtime"]["python_version"] == platform.python_version()


def test_labelled_tasks_land_only_on_the_matching_worker(routed: Routed) -> None:
    on_gpu = routed.register(placement=_placement(gpu="h200"))
    plain = routed.register()
    gpu_tasks = routed.submit(on_gpu, 8)
    zone_b_tasks = routed.submit(plain, 8, _placement(zone="b"))  # the execution's placement
    needs_a_gpu = routed.submit(plain, 4, common_pb2.Placement(resources={"gpu": 1}))
    states = routed.client.wait_all(gpu_tasks + zone_b_tasks + needs_a_gpu, timeout=120)
    assert all(s.status == common_pb2.TASK_STATUS_COMPLETED for s in states), states[:2]
    by_id = {s.task_id: s for s in states}
    assert {by_id[t].worker_id for t in gpu_tasks} == {routed.gpu}
    assert {by_id[t].worker_id for t in zone_b_tasks} == {routed.cpu}
    assert {by_id[t].worker_id for t in needs_a_gpu} == {routed.gpu}
    assert [dill.loads(by_id[t].result) for t in gpu_tasks] == [i * i for i in range(8)]


def test_a_label_nobody_has_waits_with_its_reason_then_fails(routed: Routed) -> None:
    plain = routed.register()
    (stuck,) = routed.submit(plain, 1, _placement(gpu="b300"))
    others = routed.submit(plain, 6)  # queued behind it, they are not held back
    reason = routed.pending(stuck)
    assert reason == "no connected worker has label gpu=b300"
    assert all(s.status == common_pb2.TASK_STATUS_COMPLETED for s in routed.client.wait_all(others))
    rest = routed.platform.rest_url
    status = httpx.get(f"{rest}/status/{stuck}", timeout=10).json()
    if status["status"] == "QUEUED":  # it may have failed meanwhile on a slow machine
        waiting = status.pop("waiting")
        assert status == {"task_id": stuck, "status": "QUEUED", "pending_reason": reason}
        assert (waiting["reason"], waiting["message"]) == ("NO_MATCHING_WORKER", reason)
    result = httpx.get(f"{rest}/result/{stuck}", params={"wait": 30}, timeout=60).json()
    assert result["status"] == "FAILED", result
    assert result["error"]["cause"] == "NO_COMPATIBLE_WORKER"
    assert reason in result["error"]["message"]
    assert "pending_reason" not in result  # shown only while it waits
    (state,) = routed.client.wait_all([stuck])
    assert state.attempts == 0 and state.worker_id == ""
    assert state.error.cause == common_pb2.FAILURE_CAUSE_NO_COMPATIBLE_WORKER


def test_a_function_of_another_python_never_reaches_a_worker(routed: Routed) -> None:
    future = routed.register(python="3.99.0")
    (task_id,) = routed.submit(future, 1)
    assert routed.pending(task_id) == f"no worker runs Python 3.99 (connected: {HERE})"
    (state,) = routed.client.wait_all([task_id], timeout=60)
    assert state.status == common_pb2.TASK_STATUS_FAILED
    assert state.error.cause == common_pb2.FAILURE_CAUSE_NO_COMPATIBLE_WORKER
    assert state.attempts == 0 and state.worker_id == ""
    # any_python, on the execution, lets it run; the function's own Python runs anywhere too.
    anywhere = routed.submit(future, 2, common_pb2.Placement(any_python=True))
    ours = routed.submit(routed.register(python=platform.python_version()), 2)
    states = routed.client.wait_all(anywhere + ours)
    assert [dill.loads(s.result) for s in states] == [0, 1, 0, 1]


def test_a_cloudpickle_pickle_goes_only_where_its_cloudpickle_version_runs(
    routed: Routed,
) -> None:
    import cloudpickle

    request = gateway_pb2.RegisterFunctionRequest(name="cp", payload=dill.dumps(square))
    request.runtime.python_version = platform.python_version()
    request.runtime.serializer = "cloudpickle"
    request.runtime.cloudpickle_version = "0.1.0"
    old = str(routed.stub.RegisterFunction(request, timeout=10).function_id)
    (task_id,) = routed.submit(old, 1)
    reason = routed.pending(task_id)
    assert reason.startswith("no worker runs cloudpickle 0.1, which the function was pickled with")
    (state,) = routed.client.wait_all([task_id], timeout=60)
    assert state.error.cause == common_pb2.FAILURE_CAUSE_NO_COMPATIBLE_WORKER
    request.runtime.cloudpickle_version = cloudpickle.__version__  # the workers' own: it runs
    ours = str(routed.stub.RegisterFunction(request, timeout=10).function_id)
    states = routed.client.wait_all(routed.submit(ours, 2))
    assert [dill.loads(s.result) for s in states] == [0, 1]


def test_local_mode_places_by_the_dispatchers_own_python(make_platform: PlatformFactory) -> None:
    local = make_platform(mode="local", worker_processes=1, extra_env=ENV)
    client = GrpcClient(local)
    try:
        stats = list(client.workers().values())
        assert [w.runtime.python_version for w in stats] == [platform.python_version()]
        request = gateway_pb2.RegisterFunctionRequest(name="f", payload=dill.dumps(square))
        request.runtime.python_version = "3.99.0"
        future = client.stub.RegisterFunction(request, timeout=10).function_id
        (task_id,) = client.submit(future, [(3,)])
        (state,) = client.wait_all([task_id], timeout=60)
        assert state.error.cause == common_pb2.FAILURE_CAUSE_NO_COMPATIBLE_WORKER, state
        assert state.error.message.startswith("no worker runs Python 3.99")
        ok = client.submit(client.register(square), [(3,)])
        assert [s.status in TERMINAL_CODES for s in client.wait_all(ok)] == [True]
        assert dill.loads(client.wait_all(ok)[0].result) == 9
    finally:
        client.channel.close()


def test_a_restarted_dispatcher_still_places_stored_tasks(make_platform: PlatformFactory) -> None:
    platform = make_platform(workers=0, extra_env=ENV)
    routed = Routed(platform)
    try:
        on_gpu = routed.register(placement=_placement(gpu="h200"))
        platform.dispatcher.stop()
        task_ids = routed.submit(on_gpu, 6)  # stored QUEUED while no dispatcher runs
        platform.dispatcher.start()
        states = routed.client.wait_all(task_ids, timeout=120)
        assert all(s.status == common_pb2.TASK_STATUS_COMPLETED for s in states), states[:2]
        assert {s.worker_id for s in states} == {routed.gpu}
    finally:
        routed.client.channel.close()


def test_a_bad_execution_placement_is_invalid_argument(routed: Routed) -> None:
    request = gateway_pb2.ExecuteFunctionRequest(
        function_id=routed.register(),
        payload=dill.dumps(((1,), {})),
        placement=common_pb2.Placement(resources={"gpu": -1}),
    )
    with pytest.raises(grpc.RpcError) as caught:
        routed.stub.ExecuteFunction(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "placement.resources['gpu']" in str(caught.value.details())
