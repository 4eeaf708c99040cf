"""The dispatcher alone (real Redis, real dispatcher process, no gateway): the events it sends on
the gateway Link and the task states it writes, driven by a raw Link client and fake workers.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dill
import grpc
import pytest
from faas.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc

from services.common.store import Keys, NewTask, TaskRecord, TaskStore, connect
from services.launcher import RedisServer, ServiceProcess, free_port
from services.launcher.platform import grpc_serving
from tests.integration.test_fake_worker import FakeWorker


@dataclass
class Bench:
    redis_url: str
    target: str
    dispatcher: ServiceProcess

    def store_tasks(
        self,
        count: int,
        timeout: float | None = None,
        placement: common_pb2.Placement | None = None,
    ) -> list[str]:
        """Stores a function and ``count`` QUEUED tasks as the gateway would; their ids.

        The placement is stored with each task, as the gateway does, so a dispatcher that finds
        the tasks in Redis (its reconcile loop) before they come over the link places them alike.
        """
        ids = [uuid.uuid4().hex for _ in range(count)]
        needs = placement.SerializeToString() if placement is not None else b""

        async def main() -> None:
            store = TaskStore(connect(self.redis_url), Keys())
            try:
                await store.register_function("f1", "square", dill.dumps(_square), timeout)
                await store.create_tasks(
                    [NewTask(t, "f1", dill.dumps(((3,), {})), placement=needs) for t in ids]
                )
            finally:
                await store.close()

        asyncio.run(main())
        return ids

    def records(self, task_ids: list[str]) -> list[TaskRecord | None]:
        async def main() -> list[TaskRecord | None]:
            store = TaskStore(connect(self.redis_url), Keys())
            try:
                return await store.get_tasks(task_ids)
            finally:
                await store.close()

        return asyncio.run(main())


def _square(x: int) -> int:
    return x * x


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Callable[..., Bench]]:
    started: list[ServiceProcess | RedisServer] = []

    def make(mode: str = "push", **env: str) -> Bench:
        redis = RedisServer(tmp_path / "redis")
        redis.start()
        started.append(redis)
        port = free_port("127.0.0.1")
        target = f"127.0.0.1:{port}"
        argv = [sys.executable, "-m", "services.dispatcher", "-m", mode, "-p", str(port)]
        environ = {"REDIS_URL": redis.url, "PYTHONUNBUFFERED": "1", **env}
        dispatcher = ServiceProcess(
            "dispatcher",
            argv,
            {**os.environ, **environ},
            grpc_serving(target),
            tmp_path / "dispatcher.log",
        )
        dispatcher.start()
        started.append(dispatcher)
        return Bench(redis.url, target, dispatcher)

    yield make
    for part in reversed(started):
        part.stop()


class LinkClient:
    """A gateway's Link stream driven by hand; events are collected by a reader thread."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(self.channel)
        self._requests: queue.Queue[dispatcher_pb2.LinkRequest | None] = queue.Queue()
        self.events: queue.Queue[dispatcher_pb2.TaskEvent] = queue.Queue()
        self.call = stub.Link(iter(self._requests.get, None))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                if response.HasField("events"):
                    for event in response.events.events:
                        self.events.put(event)
        except grpc.RpcError:
            pass

    def submit(
        self,
        task_ids: list[str],
        timeout: float = 0.0,
        placement: common_pb2.Placement | None = None,
    ) -> None:
        specs = [
            dispatcher_pb2.TaskSpec(
                task_id=t, function_id="f1", payload=dill.dumps(((3,), {})), placement=placement
            )
            for t in task_ids
        ]
        if timeout:
            for spec in specs:
                spec.timeout.FromNanoseconds(int(timeout * 1e9))
        batch = dispatcher_pb2.TaskSpecBatch(tasks=specs)
        self._requests.put(dispatcher_pb2.LinkRequest(tasks=batch))

    def terminal(
        self, task_ids: list[str], timeout: float = 30.0
    ) -> dict[str, dispatcher_pb2.TaskEvent]:
        """The terminal event of each of ``task_ids``, waiting up to ``timeout`` s for them."""
        deadline = time.monotonic() + timeout
        found: dict[str, dispatcher_pb2.TaskEvent] = {}
        while len(found) < len(task_ids):
            event = self.events.get(timeout=max(deadline - time.monotonic(), 0.001))
            if event.task_id in task_ids and event.status in (
                common_pb2.TASK_STATUS_COMPLETED,
                common_pb2.TASK_STATUS_FAILED,
            ):
                found[event.task_id] = event
        return found

    def close(self) -> None:
        self._requests.put(None)
        self.call.cancel()
        self.channel.close()


@pytest.fixture
def link() -> Iterator[Callable[[Bench], LinkClient]]:
    made: list[LinkClient] = []

    def make(bench: Bench) -> LinkClient:
        made.append(LinkClient(bench.target))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeWorker]]:
    made: list[FakeWorker] = []

    def make(bench: Bench, worker_id: str, **kwargs: object) -> FakeWorker:
        made.append(FakeWorker(bench.target, worker_id, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for worker in made:
        worker.close()


def _assignments(worker: FakeWorker, count: int) -> list[dispatcher_pb2.Assignment]:
    got: list[dispatcher_pb2.Assignment] = []
    while len(got) < count:
        got.extend(worker.next("assignments").assignments.assignments)
    return got


def _state_of(record: TaskRecord | None) -> tuple[object, ...]:
    assert record is not None
    return (record.status, record.attempts, record.worker_id, record.started_ms)


@pytest.mark.fault
def test_terminal_events_carry_the_state_as_stored(
    bench: Callable[..., Bench],
    link: Callable[[Bench], LinkClient],
    fake: Callable[..., FakeWorker],
) -> None:
    platform = bench()
    gateway = link(platform)
    (done, failed) = platform.store_tasks(2)
    worker = fake(platform, "w-events", capacity=2)
    worker.next("welcome")
    gateway.submit([done, failed])
    by_task = {a.task_id: a for a in _assignments(worker, 2)}
    worker.send(
        dispatcher_pb2.ConnectRequest(
            starts=dispatcher_pb2.TaskStarts(attempt_ids=[a.attempt_id for a in by_task.values()])
        )
    )
    worker.report(by_task[done], status=common_pb2.TASK_STATUS_COMPLETED, result=dill.dumps(9))
    worker.report(
        by_task[failed],
        status=common_pb2.TASK_STATUS_FAILED,
        result=dill.dumps(ValueError("no")),
        error=common_pb2.TaskError(
            cause=common_pb2.FAILURE_CAUSE_RAISED, message="no", traceback="tb"
        ),
    )
    events = gateway.terminal([done, failed])
    stored = dict(zip([done, failed], platform.records([done, failed]), strict=True))
    for task_id, event in events.items():
        record = stored[task_id]
        assert record is not None and record.terminal
        state = event.state
        assert state.task_id == task_id and state.function_id == "f1"
        assert state.status == event.status
        assert state.result == record.result
        assert (state.attempts, state.worker_id) == (1, "w-events")
        assert state.created_time.ToMilliseconds() == record.created_ms
        assert state.started_time.ToMilliseconds() == record.started_ms
        assert state.finished_time.ToMilliseconds() == record.finished_ms > 0
    assert dill.loads(events[done].state.result) == 9
    assert events[failed].state.error == common_pb2.TaskError(
        cause=common_pb2.FAILURE_CAUSE_RAISED, message="no", traceback="tb"
    )


@pytest.mark.fault
def test_a_dispatcher_timeout_event_carries_the_failure(
    bench: Callable[..., Bench],
    link: Callable[[Bench], LinkClient],
    fake: Callable[..., FakeWorker],
) -> None:
    platform = bench(FAAS_TIMEOUT_GRACE_SECONDS="0.5")
    gateway = link(platform)
    (task_id,) = platform.store_tasks(1, timeout=0.5)
    worker = fake(platform, "w-sitter")
    worker.next("welcome")
    gateway.submit([task_id], timeout=0.5)
    (assignment,) = _assignments(worker, 1)
    worker.send(
        dispatcher_pb2.ConnectRequest(
            starts=dispatcher_pb2.TaskStarts(attempt_ids=[assignment.attempt_id])
        )
    )
    event = gateway.terminal([task_id])[task_id]
    assert event.state.status == common_pb2.TASK_STATUS_FAILED
    assert event.state.error.cause == common_pb2.FAILURE_CAUSE_TIMEOUT
    assert "w-sitter" in event.state.error.message and event.state.result
    (record,) = platform.records([task_id])
    assert record is not None and event.state.finished_time.ToMilliseconds() == record.finished_ms


@pytest.mark.fault
def test_a_task_no_worker_can_take_fails_with_its_state_in_the_event(
    bench: Callable[..., Bench],
    link: Callable[[Bench], LinkClient],
    fake: Callable[..., FakeWorker],
) -> None:
    platform = bench(FAAS_NO_WORKER_TIMEOUT_SECONDS="1")
    gateway = link(platform)
    gpu = common_pb2.Placement(labels={"gpu": "h200"})
    (task_id,) = platform.store_tasks(1, placement=gpu)
    worker = fake(platform, "w-plain")  # no labels
    worker.next("welcome")
    gateway.submit([task_id], placement=gpu)
    state = gateway.terminal([task_id])[task_id].state
    assert state.status == common_pb2.TASK_STATUS_FAILED
    assert state.error.cause == common_pb2.FAILURE_CAUSE_NO_COMPATIBLE_WORKER
    assert "gpu=h200" in state.error.message and state.attempts == 0 and state.result
    (record,) = platform.records([task_id])
    assert record is not None and state.finished_time.ToMilliseconds() == record.finished_ms


# Prefetch: tasks beyond a worker's processes are its own but QUEUED until a process starts them.


@pytest.mark.fault
def test_prefetched_tasks_stay_queued_until_a_process_starts_them(
    bench: Callable[..., Bench],
    link: Callable[[Bench], LinkClient],
    fake: Callable[..., FakeWorker],
) -> None:
    platform = bench()
    gateway = link(platform)
    ids = platform.store_tasks(2)
    worker = fake(platform, "w-prefetch", capacity=1)
    worker.next("welcome")
    gateway.submit(ids)
    first, second = sorted(_assignments(worker, 2), key=lambda a: ids.index(a.task_id))
    records = platform.records(ids)
    assert [_state_of(r)[:2] for r in records] == [("QUEUED", 0), ("QUEUED", 0)]
    worker.start(first)
    deadline = time.monotonic() + 20
    while _state_of(platform.records([ids[0]])[0])[0] != "RUNNING":
        assert time.monotonic() < deadline, "the start was not recorded"
        time.sleep(0.05)  # polling Redis for the batched start write
    assert _state_of(platform.records([ids[0]])[0])[:3] == ("RUNNING", 1, "w-prefetch")
    assert _state_of(platform.records([ids[1]])[0])[:2] == ("QUEUED", 0)
    # An outcome for an attempt whose start never came is stored all the same.
    worker.report(second, status=common_pb2.TASK_STATUS_COMPLETED, result=dill.dumps(9))
    worker.report(first, status=common_pb2.TASK_STATUS_COMPLETED, result=dill.dumps(9))
    events = gateway.terminal(ids)
    assert {e.state.status for e in events.values()} == {common_pb2.TASK_STATUS_COMPLETED}
    for record in platform.records(ids):
        assert record is not None and (record.status, record.attempts) == ("COMPLETED", 1)
        assert record.worker_id == "w-prefetch" and 0 < record.started_ms <= record.finished_ms


@pytest.mark.fault
def test_a_lost_workers_prefetched_tasks_go_to_another_worker_at_once(
    bench: Callable[..., Bench],
    link: Callable[[Bench], LinkClient],
    fake: Callable[..., FakeWorker],
) -> None:
    platform = bench()
    gateway = link(platform)
    ids = platform.store_tasks(2)
    lost = fake(platform, "w-lost", capacity=1)
    lost.next("welcome")
    gateway.submit(ids)
    first, _ = sorted(_assignments(lost, 2), key=lambda a: ids.index(a.task_id))
    lost.start(first)
    deadline = time.monotonic() + 20
    while _state_of(platform.records([ids[0]])[0])[0] != "RUNNING":
        assert time.monotonic() < deadline, "the start was not recorded"
        time.sleep(0.05)  # polling Redis for the batched start write
    lost.close()  # its stream breaks: both tasks go back to the queue
    other = fake(platform, "w-other", capacity=2)
    other.next("welcome")
    again = _assignments(other, 2)
    assert sorted(a.task_id for a in again) == sorted(ids)
    for assignment in again:
        other.report(assignment, status=common_pb2.TASK_STATUS_COMPLETED, result=dill.dumps(9))
    gateway.terminal(ids)
    started, prefetched = platform.records(ids)
    assert started is not None and (started.status, started.attempts) == ("COMPLETED", 2)
    assert prefetched is not None and (prefetched.status, prefetched.attempts) == ("COMPLETED", 1)
    assert started.worker_id == prefetched.worker_id == "w-other"


@pytest.mark.fault
def test_the_dispatchers_deadline_counts_from_the_start(
    bench: Callable[..., Bench],
    link: Callable[[Bench], LinkClient],
    fake: Callable[..., FakeWorker],
) -> None:
    platform = bench(FAAS_TIMEOUT_GRACE_SECONDS="1")
    gateway = link(platform)
    ids = platform.store_tasks(2, timeout=1.0)
    worker = fake(platform, "w-slow", capacity=1)
    worker.next("welcome")
    gateway.submit(ids, timeout=1.0)
    first, second = sorted(_assignments(worker, 2), key=lambda a: ids.index(a.task_id))
    worker.start(first)  # and sits on it
    timed_out = gateway.terminal([ids[0]])[ids[0]].state
    assert timed_out.error.cause == common_pb2.FAILURE_CAUSE_TIMEOUT
    # The prefetched task was assigned as long ago, but its time only starts now.
    assert _state_of(platform.records([ids[1]])[0])[0] == "QUEUED"
    worker.start(second)
    worker.report(second, status=common_pb2.TASK_STATUS_COMPLETED, result=dill.dumps(9))
    done = gateway.terminal([ids[1]])[ids[1]].state
    assert done.status == common_pb2.TASK_STATUS_COMPLETED, done.error
