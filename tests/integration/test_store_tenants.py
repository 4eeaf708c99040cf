"""Tenants in the store against a real redis-server: reads hidden across tenants, request ids
scoped per tenant, and the open set that the scripts keep exact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from services.common.store import (
    AttemptOutcome,
    AttemptStart,
    Keys,
    LostAttempt,
    NewTask,
    QueuedFailure,
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


async def _open(store: TaskStore, tenant: str) -> set[str]:
    members = await store.client.zrange(store.keys.open_tasks(tenant), 0, -1)
    return {m.decode() for m in members}


def test_reads_of_another_tenants_records_answer_as_unknown_ids(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await store.register_function("fa", "fn", b"p", None, tenant="a")
        assert (await store.get_function("fa", "a")) is not None
        assert (await store.get_function("fa", "b")) is None
        record = await store.get_function("fa")  # the dispatcher's side sees every tenant's
        assert record is not None and record.tenant == "a"
        (created,) = await store.create_tasks([NewTask("ta", "fa", b"x", tenant="a")])
        assert created is not None and created.created
        assert await store.get_status_reason("ta", "a") == ("QUEUED", "")
        assert await store.get_status_reason("ta", "b") is None
        task = await store.get_task("ta", "a")
        assert task is not None and task.tenant == "a"
        assert await store.get_task("ta", "b") is None
        assert await store.get_tasks(["ta", "nope"], "b") == [None, None]
        # Tenant b may not run a's function: nothing stored, as for an unknown function.
        assert await store.create_tasks([NewTask("tb", "fa", b"x", tenant="b")]) == [None]
        assert await store.get_status("tb") is None
        assert await store.queued_ids() == ["ta"]

    _run(redis_url, "read:", scenario)


def test_records_without_a_tenant_are_the_default_tenants(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await store.client.hset(store.keys.function("old"), mapping={"name": "n", "created": 1})
        (created,) = await store.create_tasks([NewTask("t1", "old", b"x")])
        assert created is not None and created.created
        assert await store.create_tasks([NewTask("t2", "old", b"x", tenant="a")]) == [None]
        await store.client.hdel(store.keys.task("t1"), "tenant")
        task = await store.get_task("t1", "default")
        assert task is not None and task.tenant == "default"

    _run(redis_url, "old:", scenario)


def test_request_ids_are_scoped_per_tenant(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await store.register_function("fa", "fn", b"p", None, tenant="a")
        await store.register_function("fb", "fn", b"p", None, tenant="b")
        (a,) = await store.create_tasks([NewTask("ta", "fa", b"x", request_id="r", tenant="a")])
        (b,) = await store.create_tasks([NewTask("tb", "fb", b"x", request_id="r", tenant="b")])
        assert a is not None and a.created and a.task_id == "ta"
        assert b is not None and b.created and b.task_id == "tb"  # not a's, and no conflict
        (again,) = await store.create_tasks(
            [NewTask("tb2", "fb", b"x", request_id="r", tenant="b")]
        )
        assert again is not None and not again.created and again.task_id == "tb"
        assert await store.client.exists(store.keys.request("r", "a"), store.keys.request("r", "b"))
        assert store.keys.request("r", "a") != store.keys.request("r", "b")

    _run(redis_url, "request:", scenario)


def test_open_set_follows_every_way_a_task_ends(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await store.register_function("f", "fn", b"p", None, tenant="a")
        tasks = [NewTask(f"t{i}", "f", b"x", tenant="a") for i in range(4)]
        created = await store.create_tasks(tasks, max_open=0)  # counted, no limit
        assert all(c is not None and c.created for c in created)
        assert await _open(store, "a") == {"t0", "t1", "t2", "t3"}
        starts = [AttemptStart(f"t{i}", f"a{i}", "w") for i in range(3)]
        assert await store.start_attempts(starts) == [True, True, True]
        assert await _open(store, "a") == {"t0", "t1", "t2", "t3"}  # RUNNING is open
        await store.finish_attempts([AttemptOutcome("t0", "a0", "COMPLETED", b"r")])
        assert await _open(store, "a") == {"t1", "t2", "t3"}
        requeued = await store.requeue_attempts(
            [LostAttempt("t1", "a1")], max_attempts=3, final_result=b"", final_message="lost"
        )
        assert requeued[0].result == 1
        assert await _open(store, "a") == {"t1", "t2", "t3"}  # QUEUED again: still open
        failed = await store.requeue_attempts(
            [LostAttempt("t2", "a2")], max_attempts=1, final_result=b"", final_message="lost"
        )
        assert failed[0].result == 2
        assert await _open(store, "a") == {"t1", "t3"}
        await store.fail_queued([QueuedFailure("t3", "tok", b"", "NO_COMPATIBLE_WORKER", "m")])
        assert await _open(store, "a") == {"t1"}
        # An unstarted outcome of a QUEUED task ends it too.
        outcome = AttemptOutcome("t1", "a9", "FAILED", b"", unstarted=True, worker_id="w")
        await store.finish_attempts([outcome])
        assert await _open(store, "a") == set()
        # Without max_open nothing is counted (and nothing taken out).
        await store.create_tasks([NewTask("u", "f", b"x", tenant="a")])
        assert await _open(store, "a") == set()
        assert await store.client.hget(store.keys.task("u"), "counted") is None

    _run(redis_url, "open:", scenario)


def test_the_open_tasks_limit_refuses_and_stores_nothing(redis_url: str) -> None:
    async def scenario(store: TaskStore) -> None:
        await store.register_function("f", "fn", b"p", None, tenant="a")
        await store.register_function("g", "fn", b"p", None, tenant="b")
        first = await store.create_tasks(
            [NewTask(f"t{i}", "f", b"x", tenant="a", request_id=f"r{i}") for i in range(3)],
            max_open=3,
        )
        assert all(c is not None and c.created for c in first)
        (refused,) = await store.create_tasks([NewTask("t3", "f", b"x", tenant="a")], max_open=3)
        assert refused is not None and refused.over_quota and not refused.created
        assert await store.get_status("t3") is None
        # A repeated request id is no new task: it answers its task even at the limit.
        (repeat,) = await store.create_tasks(
            [NewTask("t9", "f", b"x", tenant="a", request_id="r1")], max_open=3
        )
        assert repeat is not None and repeat.task_id == "t1" and not repeat.over_quota
        # Another tenant has its own count.
        (other,) = await store.create_tasks([NewTask("u0", "g", b"x", tenant="b")], max_open=3)
        assert other is not None and other.created
        # One call with many single requests: each is checked with those before it.
        mixed = await store.create_tasks(
            [NewTask(f"u{i}", "g", b"x", tenant="b") for i in (1, 2, 3)],
            max_open=3,
        )
        assert [c is not None and c.created for c in mixed] == [True, True, False]
        assert mixed[2] is not None and mixed[2].over_quota
        # A request refused whole: nothing of it, not its request keys either.
        await store.finish_attempts(
            [AttemptOutcome("t0", "x", "COMPLETED", b"", unstarted=True, worker_id="w")]
        )
        batch = [NewTask(f"v{i}", "f", b"x", tenant="a", request_id=f"v#{i}") for i in range(2)]
        refused_batch = await store.create_tasks(batch, max_open=3, whole=True)
        assert all(c is not None and c.over_quota for c in refused_batch)
        assert await store.get_tasks(["v0", "v1"]) == [None, None]
        assert not await store.client.exists(store.keys.request("v#0", "a"))
        (fits,) = await store.create_tasks(batch[:1], max_open=3, whole=True)
        assert fits is not None and fits.created
        assert len(await _open(store, "a")) == 3

    _run(redis_url, "limit:", scenario)
