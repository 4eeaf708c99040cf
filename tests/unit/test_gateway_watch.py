"""The gateway's answering side, without processes: WatchTasks batches, events carry state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from faas.v1 import common_pb2, dispatcher_pb2, gateway_pb2

from services.common.store import Presence, TaskRecord
from services.common.streams import BATCH_BYTES, BATCH_ITEMS
from services.gateway.dispatcher_link import DispatcherLink
from services.gateway.servicer import GatewayServicer
from services.gateway.settings import GatewaySettings
from services.gateway.waiters import TaskWaiters
from services.gateway.watch import TaskWatch

QUEUED, RUNNING = common_pb2.TASK_STATUS_QUEUED, common_pb2.TASK_STATUS_RUNNING
COMPLETED = common_pb2.TASK_STATUS_COMPLETED


def _record(task_id: str, status: str, result: bytes = b"") -> TaskRecord:
    return TaskRecord(task_id, "f", status, result, "", "", "", 1, "w", 1, 2 if status else 0, 3)


class Store:
    """The two reads the answering side makes, from a dict; counts them."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses
        self.reads: list[str] = []

    async def get_task(self, task_id: str) -> TaskRecord | None:
        self.reads.append(task_id)
        status = self.statuses.get(task_id)
        return None if status is None else _record(task_id, status)

    async def get_tasks(self, task_ids: Sequence[str]) -> list[TaskRecord | None]:
        return [await self.get_task(t) for t in task_ids]

    async def create_tasks(self, tasks: Sequence[object]) -> list[object]:
        raise AssertionError("no task is created here")

    async def read_presence(self) -> Presence:
        return Presence()  # why a task waits: no dispatcher report


def _terminal(task_id: str, result: bytes = b"r") -> common_pb2.TaskState:
    return common_pb2.TaskState(task_id=task_id, status=COMPLETED, result=result, attempts=1)


async def _next(responses: AsyncIterator[gateway_pb2.WatchTasksResponse]) -> Any:
    return await asyncio.wait_for(anext(responses), 10)


def _watch(store: Store, waiters: TaskWaiters, interval: float = 60.0) -> TaskWatch:
    return TaskWatch(store, waiters, lambda: interval, lambda: False)  # type: ignore[arg-type]


def test_watch_sends_current_states_then_changes_and_events_answer_without_a_read() -> None:
    async def main() -> None:
        store = Store({"a": "QUEUED", "b": "COMPLETED"})
        waiters = TaskWaiters()
        watch = _watch(store, waiters)
        responses = watch.responses()
        watch.add(["a", "b", "nope", "a"])  # "a" twice: watched once
        first = await _next(responses)
        assert [(s.task_id, s.status) for s in first.tasks] == [("a", QUEUED), ("b", COMPLETED)]
        assert list(first.unknown_task_ids) == ["nope"]
        assert sorted(store.reads) == ["a", "b", "nope"]

        store.statuses["a"] = "RUNNING"
        waiters.notify("a", terminal=False)  # no state: read Redis
        assert [s.status for s in (await _next(responses)).tasks] == [RUNNING]
        reads = len(store.reads)
        waiters.notify("a", state=_terminal("a", b"value"))  # the stored state, carried
        (last,) = (await _next(responses)).tasks
        assert last.status == COMPLETED and last.result == b"value"
        assert len(store.reads) == reads  # no read after the event
        watch.end_requests()
        with pytest.raises(StopAsyncIteration):
            await _next(responses)  # every task ended and no more requests: the stream ends
        watch.close()
        assert len(waiters._subscribed) == 0

    asyncio.run(main())


def test_watch_sends_many_changes_in_bounded_responses() -> None:
    async def main() -> None:
        count = 2 * BATCH_ITEMS + 10
        ids = [f"t{i}" for i in range(count)]
        store = Store(dict.fromkeys(ids, "QUEUED"))
        waiters = TaskWaiters()
        watch = _watch(store, waiters)
        responses = watch.responses()
        watch.add(ids)
        sent = []
        while len(sent) < count:
            sent.extend((await _next(responses)).tasks)
        big = b"x" * (3 * 1024 * 1024)  # a few results of 3 MiB: bytes bound the batch too
        for index, task_id in enumerate(ids):
            waiters.notify(task_id, state=_terminal(task_id, big if index % 1000 == 0 else b""))
        batches = []
        ended = 0
        while ended < count:
            response = await _next(responses)
            assert len(response.tasks) <= BATCH_ITEMS
            assert response.ByteSize() <= BATCH_BYTES
            ended += len(response.tasks)
            batches.append(response)
        assert len(batches) > 2
        watch.close()

    asyncio.run(main())


def test_watch_rechecks_redis_when_it_hears_nothing() -> None:
    async def main() -> None:
        store = Store({"a": "QUEUED"})
        waiters = TaskWaiters()
        watch = _watch(store, waiters, interval=0.05)
        responses = watch.responses()
        watch.add(["a"])
        assert [s.status for s in (await _next(responses)).tasks] == [QUEUED]
        store.statuses["a"] = "COMPLETED"  # and no event: the safety net finds it
        assert [s.status for s in (await _next(responses)).tasks] == [COMPLETED]
        watch.close()

    asyncio.run(main())


def test_watch_rereads_everything_after_the_link_was_down() -> None:
    async def main() -> None:
        store = Store({"a": "QUEUED", "b": "QUEUED"})
        waiters = TaskWaiters()
        watch = _watch(store, waiters)
        responses = watch.responses()
        watch.add(["a", "b"])
        await _next(responses)
        store.statuses.update(a="RUNNING", b="COMPLETED")
        waiters.notify_all()
        got = (await _next(responses)).tasks
        assert sorted((s.task_id, s.status) for s in got) == [("a", RUNNING), ("b", COMPLETED)]
        watch.close()

    asyncio.run(main())


class Link:
    connected = True


class Context:
    async def abort_with_status(self, status: object) -> None:
        raise AssertionError(f"aborted: {status}")


def _servicer(store: Store, waiters: TaskWaiters, channel: grpc.aio.Channel) -> GatewayServicer:
    settings = GatewaySettings()
    return GatewayServicer(settings, store, Link(), waiters, channel, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("carried", [True, False])
def test_a_long_poll_is_answered_from_the_terminal_event(carried: bool) -> None:
    async def main() -> None:
        channel = grpc.aio.insecure_channel("127.0.0.1:9")  # never used: nothing connects
        store = Store({"a": "QUEUED"})
        waiters = TaskWaiters()
        servicer = _servicer(store, waiters, channel)
        request = gateway_pb2.GetResultRequest(task_id="a", wait={"seconds": 30})
        poll = asyncio.create_task(servicer.GetResult(request, Context()))  # type: ignore[arg-type]
        while not len(waiters):
            await asyncio.sleep(0.01)
        store.statuses["a"] = "COMPLETED"
        link = DispatcherLink(channel, waiters)
        event = dispatcher_pb2.TaskEvent(task_id="a", status=COMPLETED)
        if carried:
            event.state.CopyFrom(_terminal("a", b"from the event"))
        link._on_events([event])
        reply = await asyncio.wait_for(poll, 10)
        assert reply.task.status == COMPLETED
        if carried:
            assert reply.task.result == b"from the event"
            assert store.reads == ["a"]  # the first read only
        else:
            assert store.reads == ["a", "a"]  # no state carried: read Redis after the event
        await channel.close()

    asyncio.run(main())


def test_watch_task_ends_with_the_carried_state() -> None:
    async def main() -> None:
        channel = grpc.aio.insecure_channel("127.0.0.1:9")
        store = Store({"a": "QUEUED"})
        waiters = TaskWaiters()
        servicer = _servicer(store, waiters, channel)
        stream = servicer.WatchTask(gateway_pb2.WatchTaskRequest(task_id="a"), Context())  # type: ignore[arg-type]
        assert (await _next(stream)).task.status == QUEUED
        pending = asyncio.ensure_future(_next(stream))
        while not len(waiters):
            await asyncio.sleep(0.01)
        reads = len(store.reads)
        waiters.notify("a", state=_terminal("a", b"done"))
        assert (await pending).task.result == b"done"
        assert len(store.reads) == reads  # none after the event
        with pytest.raises(StopAsyncIteration):
            await _next(stream)
        await channel.close()

    asyncio.run(main())


def test_a_running_event_superseded_by_the_end_costs_no_read_and_one_response() -> None:
    async def main() -> None:
        store = Store({"a": "QUEUED", "b": "QUEUED"})
        waiters = TaskWaiters()
        watch = _watch(store, waiters)
        responses = watch.responses()
        watch.add(["a", "b"])
        assert [s.status for s in (await _next(responses)).tasks] == [QUEUED, QUEUED]
        reads = len(store.reads)
        waiters.notify("a", terminal=False)  # RUNNING, then the end within the debounce
        waiters.notify("a", state=_terminal("a", b"done"))
        (only,) = (await _next(responses)).tasks
        assert (only.task_id, only.status, only.result) == ("a", COMPLETED, b"done")
        assert len(store.reads) == reads  # the RUNNING event was never read

        store.statuses["b"] = "RUNNING"  # a long task: its RUNNING is read once it is due
        waiters.notify("b", terminal=False)
        (running,) = (await _next(responses)).tasks
        assert (running.task_id, running.status) == ("b", RUNNING)
        assert store.reads[reads:] == ["b"]
        watch.end_requests()
        waiters.notify("b", state=_terminal("b"))
        assert [s.status for s in (await _next(responses)).tasks] == [COMPLETED]

    asyncio.run(main())
