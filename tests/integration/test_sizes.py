"""No message size wedges a worker (issue 9, Sizes): a huge result, and big tasks batched together.

Every stream message is bounded in bytes: a result over the limit FAILS on its own and the
worker serves on; big tasks that arrive together travel in several messages, on every hop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import dill
import grpc
import pytest
from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from google.protobuf import duration_pb2

from services.common.grpc_server import CHANNEL_OPTIONS
from services.launcher import Platform
from tests.integration.conftest import PlatformFactory
from tests.support import wait_until

pytestmark = pytest.mark.slow

MiB = 1024 * 1024

# What each service logs when one of its streams breaks (worker, dispatcher, gateway).
_BROKEN_STREAM = ("dispatcher stream:", "stream broke", "dispatcher link:", "went silent")


def huge() -> bytes:
    return b"x" * 70_000_000


def double(x: int) -> int:
    return 2 * x


def reverse(data: bytes) -> bytes:
    return data[::-1]


class Client:
    """The generated stubs on a channel that takes messages up to the platform's limit."""

    def __init__(self, platform: Platform) -> None:
        self.channel = grpc.insecure_channel(platform.gateway_target, options=CHANNEL_OPTIONS)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self.channel)

    def register(self, fn: object) -> str:
        request = gateway_pb2.RegisterFunctionRequest(name="fn", payload=dill.dumps(fn))
        return str(self.stub.RegisterFunction(request, timeout=30).function_id)

    def submit(self, function_id: str, calls: Sequence[tuple[object, ...]]) -> list[str]:
        """One ExecuteFunction per call, all under way at once."""
        futures = [
            self.stub.ExecuteFunction.future(
                gateway_pb2.ExecuteFunctionRequest(
                    function_id=function_id, payload=dill.dumps((args, {}))
                ),
                timeout=60,
            )
            for args in calls
        ]
        return [str(f.result().task_id) for f in futures]

    def wait(self, task_id: str, timeout: float = 120) -> common_pb2.TaskState:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"task {task_id} did not finish within {timeout}s"
            request = gateway_pb2.GetResultRequest(task_id=task_id)
            request.wait.CopyFrom(duration_pb2.Duration(seconds=max(1, int(min(left, 10)))))
            task = self.stub.GetResult(request, timeout=30).task
            if task.status in (common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED):
                return task

    def queued(self) -> int:
        return int(self.stub.ListWorkers(gateway_pb2.ListWorkersRequest(), timeout=10).queued)

    def workers(self) -> dict[str, common_pb2.WorkerStats]:
        reply = self.stub.ListWorkers(gateway_pb2.ListWorkersRequest(), timeout=10)
        return {w.worker_id: w for w in reply.workers}


@pytest.fixture
def client_for() -> Iterator[Callable[[Platform], Client]]:
    clients: list[Client] = []

    def make(platform: Platform) -> Client:
        clients.append(Client(platform))
        return clients[-1]

    yield make
    for client in clients:
        client.channel.close()


def _broken_streams(platform: Platform) -> list[str]:
    log_dir = platform.config.log_dir
    assert log_dir is not None
    return [
        f"{path.name}: {line}"
        for path in sorted(Path(log_dir).glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if any(mark in line for mark in _BROKEN_STREAM)
    ]


@pytest.mark.parametrize(
    "result_cap",
    [None, 128 * MiB],  # the pool's cap (16 MiB) stops it; or, past the cap, the stream bound
    ids=["pool-cap", "stream-bound"],
)
def test_a_result_over_the_message_limit_fails_and_the_worker_serves_on(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client], result_cap: int | None
) -> None:
    env = {"FAAS_MAX_RESULT_BYTES": str(result_cap)} if result_cap else {}
    platform = make_platform(mode="push", workers=1, worker_processes=2, extra_env=env)
    client = client_for(platform)
    (worker_id, before), *_ = client.workers().items()

    (big,) = client.submit(client.register(huge), [()])
    state = client.wait(big)
    assert state.status == common_pb2.TASK_STATUS_FAILED, state.error
    assert state.error.cause == common_pb2.FAILURE_CAUSE_RESULT_TOO_LARGE, state.error
    assert state.attempts == 1
    assert isinstance(dill.loads(state.result), Exception)

    small = client.submit(client.register(double), [(i,) for i in range(6)])
    states = [client.wait(t, timeout=60) for t in small]
    assert [s.status for s in states] == [common_pb2.TASK_STATUS_COMPLETED] * 6, states
    assert [dill.loads(s.result) for s in states] == [2 * i for i in range(6)]
    assert {s.worker_id for s in states} == {worker_id}
    after = client.workers()[worker_id]
    assert after.connected_time == before.connected_time  # the same stream all along
    assert after.completed == 6 and after.failed == 1
    assert _broken_streams(platform) == []


def test_five_big_tasks_batched_to_one_worker_all_complete(
    make_platform: PlatformFactory, client_for: Callable[[Platform], Client]
) -> None:
    platform = make_platform(mode="push", workers=0)
    client = client_for(platform)
    function_id = client.register(reverse)
    inputs = [os.urandom(15 * MiB) for _ in range(5)]  # 75 MiB in all, over the message limit
    task_ids = client.submit(function_id, [(data,) for data in inputs])

    wait_until(lambda: client.queued() == 5, 60, "the dispatcher to hold the five tasks")
    worker = platform.add_worker(5)  # one plan assigns all five to it together
    states = [client.wait(t) for t in task_ids]
    assert [s.status for s in states] == [common_pb2.TASK_STATUS_COMPLETED] * 5, [
        (s.status, s.error) for s in states
    ]
    assert all(dill.loads(s.result) == data[::-1] for s, data in zip(states, inputs, strict=True))
    assert [s.attempts for s in states] == [1] * 5
    assert {s.worker_id for s in states} == {worker.name}
    assert _broken_streams(platform) == []
