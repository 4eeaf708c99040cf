"""A WatchTasks stream of one tenant, without processes: another tenant's task answers as an
unknown id, even when its terminal event (which carries its state) comes before any read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faas.v1 import common_pb2, gateway_pb2

from services.common.store import TaskRecord
from services.gateway.waiters import TaskWaiters
from services.gateway.watch import TaskWatch

COMPLETED = common_pb2.TASK_STATUS_COMPLETED


class Store:
    """Tasks of two tenants in a dict; a read given a tenant sees only that tenant's."""

    def __init__(self, tasks: dict[str, tuple[str, str]]) -> None:
        self.tasks = tasks  # task_id -> (status, tenant)
        self.reads: list[str] = []

    async def get_tasks(
        self, task_ids: Sequence[str], tenant: str | None = None
    ) -> list[TaskRecord | None]:
        out: list[TaskRecord | None] = []
        for task_id in task_ids:
            self.reads.append(task_id)
            found = self.tasks.get(task_id)
            if found is None or (tenant is not None and found[1] != tenant):
                out.append(None)
            else:
                status, owner = found
                out.append(
                    TaskRecord(task_id, "f", status, b"", "", "", "", 1, "w", 1, 2, 3, tenant=owner)
                )
        return out


def _carried(task_id: str) -> common_pb2.TaskState:
    return common_pb2.TaskState(task_id=task_id, status=COMPLETED, result=b"secret", attempts=1)


async def _responses(watch: TaskWatch) -> list[gateway_pb2.WatchTasksResponse]:
    out = []
    async for response in watch.responses():
        out.append(response)
    return out


def test_an_event_of_another_tenants_task_is_not_sent_before_a_read() -> None:
    async def main() -> None:
        store = Store({"theirs": ("QUEUED", "a"), "mine": ("QUEUED", "b")})
        waiters = TaskWaiters()
        watch = TaskWatch(store, waiters, lambda: 60.0, lambda: False, tenant="b")  # type: ignore[arg-type]
        watch.add(["theirs", "mine"])
        # Both end (stored first, then announced) before the stream's first read: the events'
        # carried states are not trusted until a read shows whose tasks they are.
        store.tasks = {"theirs": ("COMPLETED", "a"), "mine": ("COMPLETED", "b")}
        waiters.notify("theirs", state=_carried("theirs"))
        waiters.notify("mine", state=_carried("mine"))
        watch.end_requests()
        responses = await asyncio.wait_for(_responses(watch), 10)
        sent = [state for response in responses for state in response.tasks]
        unknown = [i for response in responses for i in response.unknown_task_ids]
        assert unknown == ["theirs"]
        assert [(s.task_id, s.status) for s in sent] == [("mine", COMPLETED)]
        assert b"secret" not in b"".join(r.SerializeToString() for r in responses)
        assert sorted(store.reads) == ["mine", "theirs"]
        watch.close()

    asyncio.run(main())


def test_once_read_a_tasks_events_answer_without_another_read() -> None:
    async def main() -> None:
        store = Store({"mine": ("QUEUED", "b")})
        waiters = TaskWaiters()
        watch = TaskWatch(store, waiters, lambda: 60.0, lambda: False, tenant="b")  # type: ignore[arg-type]
        responses = watch.responses()
        watch.add(["mine"])
        first = await asyncio.wait_for(anext(responses), 10)
        assert [s.task_id for s in first.tasks] == ["mine"]
        waiters.notify("mine", state=_carried("mine"))
        (last,) = (await asyncio.wait_for(anext(responses), 10)).tasks
        assert last.status == COMPLETED and last.result == b"secret"
        assert store.reads == ["mine"]  # the event's state was used: no second read
        watch.close()

    asyncio.run(main())
