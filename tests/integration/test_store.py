"""The Lua state changes against a real redis-server: forward only, current attempt only."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from faas.v1 import common_pb2

from services.common.errors import StoreUnavailable
from services.common.store import (
    AttemptOutcome,
    AttemptStart,
    Keys,
    LostAttempt,
    NewTask,
    Requeued,
    RequeueResult,
    RunningAttempt,
    StoreFailed,
    TaskRecord,
    TaskStore,
    connect,
)
from services.launcher import RedisServer


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


def _run(redis_url: str, prefix: str, scenario: object) -> None:
    async def main() -> None:
        store = TaskStore(connect(redis_url), Keys(prefix))
        try:
            await scenario(store)  # type: ignore[operator]
        finally:
            await store.close()

    asyncio.run(main())


def _stored(written: list[TaskRecord | None]) -> list[bool]:
    return [record is not None for record in written]


def _codes(requeued: list[Requeued]) -> list[int]:
    return [int(r.result) for r in requeued]


async def _queued_task(store: TaskStore, task_id: str = "t1") -> None:
    await store.register_function("f1", "fn", b"payload", None)
    (created,) = await store.create_tasks([NewTask(task_id, "f1", b"args")])
    assert created is not None and created.created


def test_create_needs_the_function_and_honours_request_ids(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        assert await store.create_tasks([NewTask("t0", "missing", b"")]) == [None]
        assert await store.get_status("t0") is None
        await store.register_function("f1", "fn", b"p", 2.5)
        first, again = await store.create_tasks(
            [NewTask("t1", "f1", b"a", request_id="r"), NewTask("t2", "f1", b"a", request_id="r")]
        )
        assert first is not None and first.created and first.timeout == 2.5
        assert again is not None and not again.created and again.task_id == "t1"
        assert await store.get_status("t2") is None
        assert await store.queued_ids() == ["t1"]
        await store.register_function("f2", "other", b"p", None)
        (conflict,) = await store.create_tasks([NewTask("t3", "f2", b"a", request_id="r")])
        assert conflict is not None and conflict.conflict and conflict.task_id == "t1"
        assert await store.get_status("t3") is None

    _run(redis_url, "create:", scenario)


def test_status_moves_forward_and_the_first_outcome_wins(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await _queued_task(store)
        assert await store.start_attempts([AttemptStart("t1", "a1", "w1")]) == [True]
        assert await store.start_attempts([AttemptStart("t1", "a2", "w2")]) == [False]
        assert await store.get_status("t1") == "RUNNING"
        done = AttemptOutcome("t1", "a1", "COMPLETED", b"r1")
        assert _stored(await store.finish_attempts([done])) == [True]
        late = AttemptOutcome("t1", "a1", "FAILED", b"r2", "RAISED", "boom")
        assert _stored(await store.finish_attempts([late])) == [
            True
        ]  # a repeat: reported, not applied
        assert _stored(
            await store.finish_attempts([AttemptOutcome("t1", "a2", "FAILED", b"")])
        ) == [False]
        record = await store.get_task("t1")
        assert record is not None and record.status == "COMPLETED" and record.result == b"r1"
        assert _codes(
            await store.requeue_attempts(
                [LostAttempt("t1", "a1")], max_attempts=3, final_result=b"", final_message=""
            )
        ) == [0]
        assert await store.queued_ids() == [] and await store.running_ids() == []

    _run(redis_url, "forward:", scenario)


def test_terminal_writes_reply_with_the_state_as_stored(redis_url: str) -> None:
    """The dispatcher announces terminal states from these replies, never reading them back."""

    async def scenario(store: TaskStore) -> None:
        await _queued_task(store)
        await store.start_attempts([AttemptStart("t1", "a1", "w1")])
        done = AttemptOutcome("t1", "a1", "FAILED", b"exc", "RAISED", "boom", "tb")
        (written,) = await store.finish_attempts([done])
        stored = await store.get_task("t1")
        assert written is not None and written == stored
        assert (written.status, written.cause, written.message, written.traceback) == (
            "FAILED",
            "RAISED",
            "boom",
            "tb",
        )
        assert (written.attempts, written.worker_id, written.function_id) == (1, "w1", "f1")
        assert 0 < written.created_ms <= written.started_ms <= written.finished_ms
        # A repeat of the same attempt with another outcome reports the first one, as stored.
        other = AttemptOutcome("t1", "a1", "COMPLETED", b"other")
        assert await store.finish_attempts([other]) == [stored]

    _run(redis_url, "written:", scenario)


def test_a_superseded_attempt_cannot_report(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await _queued_task(store)
        await store.start_attempts([AttemptStart("t1", "a1", "w1")])
        lost = [LostAttempt("t1", "a1")]
        assert _codes(
            await store.requeue_attempts(lost, max_attempts=3, final_result=b"", final_message="")
        ) == [1]
        assert await store.get_status("t1") == "QUEUED"
        await store.start_attempts([AttemptStart("t1", "a2", "w2")])
        stale = AttemptOutcome("t1", "a1", "COMPLETED", b"old")
        assert _stored(await store.finish_attempts([stale])) == [False]
        fresh = AttemptOutcome("t1", "a2", "COMPLETED", b"new")
        assert _stored(await store.finish_attempts([fresh])) == [True]
        record = await store.get_task("t1")
        assert record is not None and record.result == b"new" and record.attempts == 2

    _run(redis_url, "supersede:", scenario)


def test_a_retried_write_reports_what_the_first_send_did(redis_url: str) -> None:
    """A timed-out write is retried with the same attempt id: each script is idempotent."""

    async def scenario(store: TaskStore) -> None:
        await _queued_task(store)
        start = [AttemptStart("t1", "a1", "w1")]
        assert await store.start_attempts(start) == [True]
        assert await store.start_attempts(start) == [True]  # the retry of a start that landed
        record = await store.get_task("t1")
        assert record is not None and (record.status, record.attempts) == ("RUNNING", 1)
        assert await store.running_attempts(["t1"]) == {"t1": RunningAttempt("a1", "w1")}
        lost = [LostAttempt("t1", "a1")]
        kwargs = {"max_attempts": 3, "final_result": b"", "final_message": ""}
        assert _codes(await store.requeue_attempts(lost, **kwargs)) == [1]  # type: ignore[arg-type]
        assert _codes(await store.requeue_attempts(lost, **kwargs)) == [1]  # type: ignore[arg-type]
        assert await store.queued_ids() == ["t1"] and await store.running_ids() == []
        assert await store.start_attempts([AttemptStart("t1", "a2", "w2")]) == [True]
        assert _codes(await store.requeue_attempts(lost, **kwargs)) == [0]  # type: ignore[arg-type]  # superseded
        done = [AttemptOutcome("t1", "a2", "COMPLETED", b"r")]
        assert _stored(await store.finish_attempts(done)) == [True]
        assert _stored(await store.finish_attempts(done)) == [True]
        assert await store.start_attempts([AttemptStart("t1", "a2", "w2")]) == [False]
        record = await store.get_task("t1")
        assert record is not None and (record.status, record.attempts) == ("COMPLETED", 2)

    _run(redis_url, "retried:", scenario)


def test_a_retried_final_requeue_reports_the_failure(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await _queued_task(store)
        await store.start_attempts([AttemptStart("t1", "a1", "w")])
        lost = [LostAttempt("t1", "a1")]
        kwargs = {"max_attempts": 1, "final_result": b"E", "final_message": "m"}
        assert _codes(await store.requeue_attempts(lost, **kwargs)) == [2]  # type: ignore[arg-type]
        assert _codes(await store.requeue_attempts(lost, **kwargs)) == [2]  # type: ignore[arg-type]
        late = [AttemptOutcome("t1", "a1", "COMPLETED", b"")]
        assert _stored(await store.finish_attempts(late)) == [False]

    _run(redis_url, "final:", scenario)


def test_requeue_fails_the_task_after_max_attempts(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await _queued_task(store)
        for attempt in ("a1", "a2"):
            await store.start_attempts([AttemptStart("t1", attempt, "w")])
            results = await store.requeue_attempts(
                [LostAttempt("t1", attempt)], max_attempts=2, final_result=b"E", final_message="m"
            )
        assert [r.result for r in results] == [RequeueResult.FAILED]
        record = await store.get_task("t1")
        assert record is not None and results[0].record == record  # the state as stored
        assert (record.status, record.cause, record.result) == ("FAILED", "WORKER_LOST", b"E")

    _run(redis_url, "attempts:", scenario)


def test_finished_tasks_expire_when_a_result_ttl_is_set(redis_url: str) -> None:
    async def main() -> None:
        store = TaskStore(connect(redis_url), Keys("ttl:"), result_ttl=60.0)
        try:
            await _queued_task(store)
            await store.start_attempts([AttemptStart("t1", "a1", "w1")])
            assert await store.client.pttl("ttl:task:t1") == -1  # kept while not terminal
            await store.finish_attempts([AttemptOutcome("t1", "a1", "COMPLETED", b"r")])
            assert 0 < await store.client.pttl("ttl:task:t1") <= 60_000
            assert await store.client.pttl("ttl:function:f1") == -1  # functions stay
        finally:
            await store.close()

    asyncio.run(main())


def test_aof_is_on(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        assert await store.client.config_get("appendonly") == {"appendonly": "yes"}

    _run(redis_url, "aof:", scenario)


def test_a_function_is_read_back_with_what_the_gateway_recorded(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        assert await store.get_function("missing") is None
        runtime = common_pb2.Runtime(python_version="3.11.7", dill_version="0.4.1")
        runtime.pickle_protocol = 4
        placement = common_pb2.Placement(labels={"gpu": "h200"}, resources={"gpu": 1.0})
        await store.register_function(
            "f1",
            "double",
            b"p" * 300,
            2.5,
            by_reference=True,
            module="mylib",
            qualname="double",
            runtime=runtime,
            placement=placement,
        )
        record = await store.get_function("f1")
        assert record is not None
        assert (record.name, record.size_bytes, record.timeout) == ("double", 300, 2.5)
        assert (record.by_reference, record.module, record.qualname) == (True, "mylib", "double")
        assert record.runtime == runtime and record.placement == placement
        assert record.created_ms > 0
        await store.register_function("f2", "plain", b"q", None)
        plain = await store.get_function("f2")
        assert plain is not None and plain.timeout is None and not plain.by_reference
        assert plain.runtime == common_pb2.Runtime() and plain.placement == common_pb2.Placement()
        assert await store.get_function_payload("f1") == b"p" * 300

    _run(redis_url, "function:", scenario)


def test_redis_errors_come_out_as_the_platforms_own(redis_url: str) -> None:
    """No service needs redis-py's exceptions: a store that cannot reach Redis, or that Redis
    answers with an error, raises StoreUnavailable (StoreFailed for an error reply)."""

    async def main() -> None:
        away = TaskStore(connect("redis://127.0.0.1:1/0", socket_timeout=1.0), Keys("away:"))
        try:
            with pytest.raises(StoreUnavailable) as caught:
                await away.get_status("t1")
            assert not isinstance(caught.value, StoreFailed)
            assert caught.value.reason == "STORE_UNAVAILABLE"
        finally:
            await away.close()
        store = TaskStore(connect(redis_url), Keys("wrongtype:"))
        try:
            await store.client.set("wrongtype:task:t1", "not a hash")
            with pytest.raises(StoreFailed):
                await store.get_status("t1")
        finally:
            await store.close()

    asyncio.run(main())
