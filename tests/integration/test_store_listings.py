"""The listing indexes and function counts against a real redis-server: kept by the Lua scripts,
paged newest first with no full scan, expired ids dropped as they are met."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from services.common.store import (
    AttemptOutcome,
    AttemptStart,
    Cursor,
    FunctionRecord,
    Keys,
    LostAttempt,
    NewTask,
    QueuedFailure,
    TaskFilter,
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


def _run(redis_url: str, prefix: str, scenario: Any, result_ttl: float = 0.0) -> None:
    async def main() -> None:
        store = TaskStore(connect(redis_url), Keys(prefix), result_ttl=result_ttl)
        try:
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(main())


async def _all_tasks(
    store: TaskStore, tenant: str, filters: TaskFilter, page_size: int
) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: Cursor | None = None
    while True:
        page = await store.list_tasks(
            tenant, filters, page_size=page_size, budget=10 * page_size, cursor=cursor
        )
        pages.append([r.task_id for r in page.items])
        if page.cursor is None:
            return pages
        cursor = page.cursor


async def _counts(store: TaskStore, function_id: str) -> tuple[int, int, int]:
    record = await store.get_function(function_id)
    assert record is not None
    return record.submitted, record.completed, record.failed


def test_pages_cover_every_task_once_newest_first_batches_included(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await store.register_function("f1", "fn", b"p", None, tenant="a")
        # One batch shares a creation time: ties must page exactly too.
        created = await store.create_tasks(
            [NewTask(f"t{i:03}", "f1", b"x", tenant="a") for i in range(37)], whole=True
        )
        assert all(c is not None and c.created for c in created)
        await asyncio.sleep(0.005)
        await store.create_tasks([NewTask(f"u{i}", "f1", b"x", tenant="a") for i in range(5)])
        pages = await _all_tasks(store, "a", TaskFilter(), 10)
        ids = [t for page in pages for t in page]
        assert len(ids) == 42 and set(ids) == {f"t{i:03}" for i in range(37)} | {
            f"u{i}" for i in range(5)
        }
        assert ids[:5] == ["u4", "u3", "u2", "u1", "u0"]  # one batch: ties by id, descending
        records = await store.get_tasks(ids)
        created_ms = [r.created_ms for r in records if r is not None]
        assert created_ms == sorted(created_ms, reverse=True)
        assert [len(p) for p in pages[:4]] == [10, 10, 10, 10]
        assert await _all_tasks(store, "b", TaskFilter(), 10) == [[]]  # another tenant's: none

    _run(redis_url, "pages:", scenario)


def test_counts_follow_every_terminal_script_once(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await store.register_function("f1", "fn", b"p", None)
        await store.create_tasks([NewTask(f"t{i}", "f1", b"x") for i in range(4)])
        assert await _counts(store, "f1") == (4, 0, 0)
        await store.start_attempts([AttemptStart(f"t{i}", f"a{i}", "w1") for i in range(3)])
        done = AttemptOutcome("t0", "a0", "COMPLETED", b"r")
        raised = AttemptOutcome("t1", "a1", "FAILED", b"e", "RAISED", "boom")
        await store.finish_attempts([done, raised])
        await store.finish_attempts([done, raised])  # a retried write of the same attempts
        assert await _counts(store, "f1") == (4, 1, 1)
        for _ in range(2):  # the last attempt lost: FAILED, counted once
            await store.requeue_attempts(
                [LostAttempt("t2", "a2")], max_attempts=1, final_result=b"", final_message="lost"
            )
        failure = QueuedFailure("t3", "tok", b"", "NO_COMPATIBLE_WORKER", "none")
        await store.fail_queued([failure])
        await store.fail_queued([failure])
        assert await _counts(store, "f1") == (4, 1, 3)

    _run(redis_url, "counts:", scenario)


def test_delete_function_refuses_open_tasks_then_deletes(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await store.register_function("f1", "fn", b"p", None, tenant="a")
        await store.create_tasks([NewTask("t1", "f1", b"x", tenant="a")])
        assert await store.delete_function("f1", "b") is None  # another tenant's: unknown
        assert await store.delete_function("nope", "a") is None
        assert await store.delete_function("f1", "a") == 1
        await store.start_attempts([AttemptStart("t1", "a1", "w1")])
        assert await store.delete_function("f1", "a") == 1
        await store.finish_attempts([AttemptOutcome("t1", "a1", "COMPLETED", b"r")])
        assert await store.delete_function("f1", "a") == 0
        assert await store.get_function("f1") is None
        assert await store.create_tasks([NewTask("t2", "f1", b"x", tenant="a")]) == [None]
        page = await store.list_functions("a", page_size=10, budget=100)
        assert page.items == [] and page.cursor is None
        assert await store.get_task("t1") is not None  # its tasks' records stay
        assert not await store.client.exists("del:function:f1")

    _run(redis_url, "del:", scenario)


def test_functions_page_newest_first_with_counts(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        for i in range(7):
            await store.register_function(f"f{i}", f"fn{i}", b"p", None, tenant="a")
            await asyncio.sleep(0.002)
        await store.register_function("g", "other", b"p", None, tenant="b")
        await store.create_tasks([NewTask("t1", "f3", b"x", tenant="a")])
        seen: list[FunctionRecord] = []
        cursor: Cursor | None = None
        while True:
            page = await store.list_functions("a", page_size=3, budget=30, cursor=cursor)
            seen += page.items
            if page.cursor is None:
                break
            cursor = page.cursor
        assert [f.function_id for f in seen] == [f"f{i}" for i in reversed(range(7))]
        assert next(f for f in seen if f.function_id == "f3").submitted == 1

    _run(redis_url, "fns:", scenario)


def test_expired_tasks_leave_the_listings(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await store.register_function("f1", "fn", b"p", None)
        await store.create_tasks([NewTask(f"t{i}", "f1", b"x") for i in range(3)])
        await store.start_attempts([AttemptStart("t0", "a0", "w1")])
        await store.finish_attempts([AttemptOutcome("t0", "a0", "COMPLETED", b"r")])
        for _ in range(200):  # its hash expires after 0.2 s
            if not await store.client.exists("ttl:task:t0"):
                break
            await asyncio.sleep(0.05)
        for filters in (TaskFilter(), TaskFilter(function_id="f1")):
            pages = await _all_tasks(store, "default", filters, 10)
            assert sorted(t for p in pages for t in p) == ["t1", "t2"]
        assert await store.client.zscore("ttl:tasks:default", "t0") is None  # dropped
        assert await store.client.zscore("ttl:function-tasks:f1", "t0") is None

    _run(redis_url, "ttl:", scenario, result_ttl=0.2)


def test_filters_time_bounds_and_no_scan(redis_url: str) -> None:
    """5,000 tasks of another function: listing a function of 10 reads 10 hashes (counted by
    the listing and by Redis's own INFO commandstats), and a status filter stays in budget."""

    async def hmget_calls(store: TaskStore) -> int:
        stats = await store.client.info("commandstats")
        return int(stats.get("cmdstat_hmget", {}).get("calls", 0))

    async def scenario(store: TaskStore) -> None:
        await store.register_function("big", "fn", b"p", None)
        await store.register_function("small", "fn", b"p", None)
        for start in range(0, 5000, 1000):
            await store.create_tasks(
                [NewTask(f"b{i}", "big", b"x") for i in range(start, start + 1000)], whole=True
            )
        await store.create_tasks([NewTask(f"s{i}", "small", b"x") for i in range(10)])
        before = await hmget_calls(store)
        page = await store.list_tasks(
            "default", TaskFilter(function_id="small"), page_size=50, budget=500
        )
        after = await hmget_calls(store)
        assert sorted(r.task_id for r in page.items) == sorted(f"s{i}" for i in range(10))
        assert page.examined == 10 and page.cursor is None
        assert after - before == 10
        assert all(r.result == b"" for r in page.items)
        # A status no task has: the budget (10 x the page) bounds the read, and the page is
        # short with a cursor to go on from.
        page = await store.list_tasks(
            "default", TaskFilter(statuses=frozenset({"RUNNING"})), page_size=20, budget=200
        )
        assert page.items == [] and page.examined == 200 and page.cursor is not None
        # Time bounds: the newest 10 (the small function's) are after the big batches.
        small: list[TaskRecord] = [
            r for r in await store.get_tasks([f"s{i}" for i in range(10)]) if r is not None
        ]
        newest = max(r.created_ms for r in small)
        oldest = min(r.created_ms for r in small)
        page = await store.list_tasks(
            "default",
            TaskFilter(created_after_ms=oldest, created_before_ms=newest + 1),
            page_size=100,
            budget=1000,
        )
        assert {r.task_id for r in page.items} >= {f"s{i}" for i in range(10)}
        assert all(oldest <= r.created_ms <= newest for r in page.items)

    _run(redis_url, "scan:", scenario)
