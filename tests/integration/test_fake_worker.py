"""Hostile and broken workers on the real dispatcher's Connect stream (raw generated stubs).

A fake worker here is a plain gRPC client that speaks the worker protocol by hand: it may lie
about its identity, its capacity and the attempts it holds, report values no real worker sends,
or sit on a task. None of that may strand a task, store a forged result or cut off a real worker.
"""

from __future__ import annotations

import pickle
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import dill
import grpc
import pytest
from faas.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc

from services.launcher import Platform
from tests.integration.conftest import PlatformFactory
from tests.support import GrpcClient, wait_until

ConnectResponse = dispatcher_pb2.ConnectResponse


class FakeWorker:
    """One Connect stream driven by hand; responses are collected by a reader thread."""

    def __init__(
        self,
        target: str,
        worker_id: str,
        capacity: int = 1,
        running: Sequence[str] = (),
        hello: bool = True,
        token: str | None = None,
    ) -> None:
        self.channel = grpc.insecure_channel(target)
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(self.channel)
        self._requests: queue.Queue[dispatcher_pb2.ConnectRequest | None] = queue.Queue()
        if hello:
            self.send(
                dispatcher_pb2.ConnectRequest(
                    hello=dispatcher_pb2.WorkerHello(
                        worker_id=worker_id,
                        host="fake",
                        pid=1,
                        capacity=capacity,
                        running_attempt_ids=list(running),
                    )
                )
            )
        self.responses: queue.Queue[ConnectResponse | grpc.RpcError | None] = queue.Queue()
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.call = stub.Connect(iter(self._requests.get, None), metadata=metadata)
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if hello:
            threading.Thread(target=self._heartbeats, daemon=True).start()

    def _heartbeats(self) -> None:
        beat = dispatcher_pb2.ConnectRequest(heartbeat=dispatcher_pb2.Heartbeat())
        while not self._closed.wait(0.5):  # the worker protocol's heartbeat, kept up by hand
            self.send(beat)

    def _read(self) -> None:
        try:
            for response in self.call:
                self.responses.put(response)
            self.responses.put(None)
        except grpc.RpcError as exc:
            self.responses.put(exc)

    def send(self, request: dispatcher_pb2.ConnectRequest) -> None:
        self._requests.put(request)

    def next(self, kind: str, timeout: float = 20.0) -> ConnectResponse:
        """The next response of ``kind`` (heartbeats skipped); fails on the stream's end."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.responses.get(timeout=max(deadline - time.monotonic(), 0.001))
            if isinstance(item, ConnectResponse):
                if item.WhichOneof("kind") == kind:
                    return item
                continue
            raise AssertionError(f"stream ended while waiting for {kind}: {item!r}")

    def end(self, timeout: float = 20.0) -> grpc.RpcError | None:
        """Waits for the stream to end; the error it ended with, if any."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.responses.get(timeout=max(deadline - time.monotonic(), 0.001))
            if not isinstance(item, ConnectResponse):
                return item

    def start(self, *assignments: dispatcher_pb2.Assignment) -> None:
        """Says a process started these (prefetched attempts are QUEUED until then)."""
        starts = dispatcher_pb2.TaskStarts(attempt_ids=[a.attempt_id for a in assignments])
        self.send(dispatcher_pb2.ConnectRequest(starts=starts))

    def report(self, assignment: dispatcher_pb2.Assignment, **fields: object) -> None:
        outcome = dispatcher_pb2.TaskOutcome(
            task_id=assignment.task_id, attempt_id=assignment.attempt_id, **fields
        )
        batch = dispatcher_pb2.TaskOutcomeBatch(outcomes=[outcome])
        self.send(dispatcher_pb2.ConnectRequest(outcomes=batch))

    def close(self) -> None:
        self._closed.set()
        self._requests.put(None)
        self.call.cancel()
        self.channel.close()


@pytest.fixture
def fakes() -> Iterator[Callable[..., FakeWorker]]:
    made: list[FakeWorker] = []

    def make(platform: Platform, worker_id: str, **kwargs: object) -> FakeWorker:
        made.append(FakeWorker(platform.dispatcher_target, worker_id, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for fake in made:
        fake.close()


def square(x: int) -> int:
    return x * x


def nap(seconds: float) -> str:
    import time

    time.sleep(seconds)
    return "slept"


FAST = {"FAAS_HELLO_TIMEOUT_SECONDS": "1", "FAAS_TIMEOUT_GRACE_SECONDS": "1"}


def _completed(state: common_pb2.TaskState, value: object) -> None:
    assert state.status == common_pb2.TASK_STATUS_COMPLETED, state.error
    assert dill.loads(state.result) == value


@pytest.mark.fault
def test_a_stolen_worker_id_is_refused_and_the_real_worker_serves_on(
    make_platform: PlatformFactory, fakes: Callable[..., FakeWorker]
) -> None:
    platform = make_platform(workers=1, worker_processes=1)
    client = GrpcClient(platform)
    function_id = client.register(square)
    _completed(client.wait_all(client.submit(function_id, [(3,)]))[0], 9)
    (worker_id,) = client.workers()
    impostor = fakes(platform, worker_id, capacity=4)
    error = impostor.end()
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS, error
    assert worker_id in error.details()
    states = client.wait_all(client.submit(function_id, [(i,) for i in range(10)]), timeout=60)
    for i, state in enumerate(states):
        _completed(state, i * i)
    assert client.workers()[worker_id].completed == 11


@pytest.mark.fault
def test_forged_outcomes_for_attempts_never_given_are_not_stored(
    make_platform: PlatformFactory, fakes: Callable[..., FakeWorker]
) -> None:
    platform = make_platform(workers=0)
    client = GrpcClient(platform)
    (task_id,) = client.submit(client.register(square), [(5,)])
    holder = fakes(platform, "holder")
    holder.next("welcome")
    assignment = holder.next("assignments").assignments.assignments[0]
    assert assignment.task_id == task_id
    holder.start(assignment)
    running = common_pb2.TASK_STATUS_RUNNING
    wait_until(lambda: client.state(task_id).status == running, 20, "the start recorded")
    forger = fakes(platform, "forger")
    forger.next("welcome")
    forger.report(assignment, status=common_pb2.TASK_STATUS_COMPLETED, result=dill.dumps("forged"))
    ack = forger.next("ack")  # acknowledged, so it is not sent again, but not stored
    assert list(ack.ack.attempt_ids) == [assignment.attempt_id]
    assert client.state(task_id).status == common_pb2.TASK_STATUS_RUNNING
    holder.report(assignment, status=common_pb2.TASK_STATUS_COMPLETED, result=dill.dumps(25))
    holder.next("ack")
    _completed(client.state(task_id), 25)


@pytest.mark.fault
def test_an_unknown_failure_cause_still_ends_the_task(
    make_platform: PlatformFactory, fakes: Callable[..., FakeWorker]
) -> None:
    platform = make_platform(workers=0)
    client = GrpcClient(platform)
    task_ids = client.submit(client.register(square), [(1,), (2,)])
    fake = fakes(platform, "odd", capacity=2)
    fake.next("welcome")
    batch = fake.next("assignments").assignments.assignments
    while len(batch) < 2:
        batch.extend(fake.next("assignments").assignments.assignments)
    first, second = sorted(batch, key=lambda a: task_ids.index(a.task_id))
    fake.report(
        first,
        status=common_pb2.TASK_STATUS_FAILED,
        result=pickle.dumps(RuntimeError("x")),
        error=common_pb2.TaskError(cause=99, message="odd"),  # type: ignore[arg-type]
    )
    fake.report(second, status=77, result=b"")  # type: ignore[arg-type]
    states = client.wait_all(task_ids, timeout=30)
    assert [s.status for s in states] == [common_pb2.TASK_STATUS_FAILED] * 2
    assert states[0].error.cause == common_pb2.FAILURE_CAUSE_UNSPECIFIED
    assert "unknown failure cause (99)" in states[0].error.message
    assert "invalid status (77)" in states[1].error.message


@pytest.mark.fault
def test_a_worker_cannot_claim_unbounded_capacity_or_stay_silent(
    make_platform: PlatformFactory, fakes: Callable[..., FakeWorker]
) -> None:
    platform = make_platform(workers=0, extra_env=FAST)
    greedy = fakes(platform, "greedy", capacity=1_000_000)
    error = greedy.end()
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "capacity" in error.details()
    silent = fakes(platform, "silent", hello=False)
    error = silent.end(timeout=30)
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "hello" in error.details()


@pytest.mark.fault
def test_pull_credits_are_bounded_by_what_the_welcome_says(
    make_platform: PlatformFactory, fakes: Callable[..., FakeWorker]
) -> None:
    """A worker may ask ahead of its processes (pull prefetch), but never for more than the
    dispatcher keeps for it, which its welcome states: asking for 1,000 gets that many."""
    platform = make_platform(mode="pull", workers=0)
    client = GrpcClient(platform)
    client.submit(client.register(square), [(i,) for i in range(200)])
    fake = fakes(platform, "hoarder", capacity=2)
    bound = fake.next("welcome").welcome.max_credits
    assert 2 < bound < 200  # more than its processes, far from everything queued
    work = dispatcher_pb2.WorkRequest(slots=1000)
    fake.send(dispatcher_pb2.ConnectRequest(work_request=work))
    got: list[dispatcher_pb2.Assignment] = []
    while len(got) < bound:
        got.extend(fake.next("assignments").assignments.assignments)
    with pytest.raises(queue.Empty):
        fake.next("assignments", timeout=3)  # a bounded wait for more that must not come
    assert len(got) == bound
    wait_until(lambda: client.workers()["hoarder"].in_flight == bound, 10, "all it may hold")


@pytest.mark.fault
def test_a_worker_sitting_on_a_task_past_its_timeout_loses_it(
    make_platform: PlatformFactory, fakes: Callable[..., FakeWorker]
) -> None:
    platform = make_platform(workers=0, extra_env=FAST)
    client = GrpcClient(platform)
    (task_id,) = client.submit(client.register(nap, timeout=1), [(0.1,)])
    fake = fakes(platform, "sitter")
    fake.next("welcome")
    assignment = fake.next("assignments").assignments.assignments[0]
    fake.start(assignment)
    (state,) = client.wait_all([task_id], timeout=30)  # 1 s timeout + 1 s grace
    assert state.status == common_pb2.TASK_STATUS_FAILED
    assert state.error.cause == common_pb2.FAILURE_CAUSE_TIMEOUT
    assert "sitter" in state.error.message
    fake.report(assignment, status=common_pb2.TASK_STATUS_COMPLETED, result=dill.dumps("late"))
    fake.next("ack")
    assert client.state(task_id).status == common_pb2.TASK_STATUS_FAILED


@pytest.mark.fault
def test_after_a_restart_a_worker_adopts_only_its_own_attempts(
    make_platform: PlatformFactory, fakes: Callable[..., FakeWorker]
) -> None:
    platform = make_platform(workers=0)
    client = GrpcClient(platform)
    (task_id,) = client.submit(client.register(square), [(6,)])
    owner = fakes(platform, "owner")
    owner.next("welcome")
    assignment = owner.next("assignments").assignments.assignments[0]
    owner.start(assignment)
    running = common_pb2.TASK_STATUS_RUNNING
    wait_until(lambda: client.state(task_id).status == running, 20, "the start recorded")
    platform.dispatcher.kill()  # the task stays RUNNING in Redis under the owner's attempt
    owner.close()
    platform.dispatcher.start()
    thief = fakes(platform, "thief", running=[assignment.attempt_id])
    thief.next("welcome")
    thief.report(assignment, status=common_pb2.TASK_STATUS_COMPLETED, result=dill.dumps("stolen"))
    thief.next("ack")
    back = fakes(platform, "owner", running=[assignment.attempt_id])
    back.next("welcome")
    back.report(assignment, status=common_pb2.TASK_STATUS_COMPLETED, result=dill.dumps(36))
    back.next("ack")
    _completed(client.wait_all([task_id], timeout=30)[0], 36)
