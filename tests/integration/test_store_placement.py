"""The store's side of placement against a real redis-server: a task keeps its placement and
runtime, a pending reason only while QUEUED, and FAIL_QUEUED fails only QUEUED tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest
from faas.v1 import common_pb2

from services.common.store import (
    AttemptStart,
    Keys,
    NewTask,
    QueuedFailure,
    TaskStore,
    connect,
)
from services.launcher import RedisServer

PLACEMENT = common_pb2.Placement(labels={"gpu": "h200"}, resources={"gpu": 1}).SerializeToString()
RUNTIME = common_pb2.Runtime(python_version="3.12.1").SerializeToString()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


def _run(redis_url: str, prefix: str, scenario: Callable[[TaskStore], Awaitable[None]]) -> None:
    async def main() -> None:
        store = TaskStore(connect(redis_url), Keys(prefix))
        try:
            await store.register_function("f1", "fn", b"payload", None)
            tasks = [
                NewTask(f"t{i}", "f1", b"args", placement=PLACEMENT, runtime=RUNTIME)
                for i in (1, 2)
            ]
            await store.create_tasks([*tasks, NewTask("t3", "f1", b"args")])
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(main())


def test_a_task_keeps_its_placement_and_runtime(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        loaded = {t.task_id: t for t in await store.load_queued(["t1", "t3"])}
        assert (loaded["t1"].placement, loaded["t1"].runtime) == (PLACEMENT, RUNTIME)
        assert (loaded["t3"].placement, loaded["t3"].runtime) == (b"", b"")

    _run(redis_url, "keep:", scenario)


def test_a_pending_reason_is_kept_only_while_queued(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        assert await store.set_pending([("t1", "no gpu"), ("t2", "no gpu")]) == 2
        assert await store.get_status_reason("t1") == ("QUEUED", "no gpu")
        record = await store.get_task("t1")
        assert record is not None and record.pending_reason == "no gpu"
        (queued,) = await store.load_queued(["t1"])
        assert queued.pending_reason == "no gpu"
        assert await store.start_attempts([AttemptStart("t1", "a1", "w1")]) == [True]
        assert await store.get_status_reason("t1") == ("RUNNING", "")  # the start cleared it
        assert await store.set_pending([("t1", "late"), ("t2", "")]) == 1  # t1 is RUNNING
        assert await store.get_status_reason("t1") == ("RUNNING", "")
        assert await store.get_status_reason("t2") == ("QUEUED", "")
        assert await store.get_status_reason("nope") is None

    _run(redis_url, "pending:", scenario)


def test_fail_queued_fails_only_queued_tasks_and_repeats_safely(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await store.set_pending([("t1", "no gpu")])
        assert await store.start_attempts([AttemptStart("t2", "a2", "w1")]) == [True]
        failures = [
            QueuedFailure(t, f"tok-{t}", b"err", "NO_COMPATIBLE_WORKER", "no gpu")
            for t in ("t1", "t2")
        ]
        written, not_queued = await store.fail_queued(failures)
        again = await store.fail_queued(failures)  # a retried write: the same
        assert not_queued is None and again == [written, None]
        other = QueuedFailure("t1", "another", b"err", "NO_COMPATIBLE_WORKER", "no gpu")
        assert await store.fail_queued([other]) == [None]
        record = await store.get_task("t1")
        assert record is not None and written == record  # the reply is the state as stored
        assert (record.status, record.cause, record.message, record.attempts) == (
            "FAILED",
            "NO_COMPATIBLE_WORKER",
            "no gpu",
            0,
        )
        assert record.pending_reason == "" and record.result == b"err"
        assert "t1" not in await store.queued_ids()
        assert await store.get_status("t2") == "RUNNING"
        assert await store.start_attempts([AttemptStart("t1", "a9", "w1")]) == [False]

    _run(redis_url, "fail:", scenario)
