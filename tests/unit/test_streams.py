"""Stream messages: batches merge and split within a byte and item budget; heartbeats yield."""

from __future__ import annotations

import asyncio
import pickle

import grpc
from faas.v1 import common_pb2
from faas.v1 import dispatcher_pb2 as pb

from services.common.grpc_server import MAX_MESSAGE_BYTES
from services.common.pool import Outcome
from services.common.streams import drain, merge, split
from services.gateway.dispatcher_link import DispatcherLink
from services.gateway.waiters import TaskWaiters
from services.worker.agent import Worker
from services.worker.settings import WorkerSettings

COMPLETED = common_pb2.TASK_STATUS_COMPLETED


def _assign(*task_ids: str) -> pb.ConnectResponse:
    batch = pb.AssignmentBatch(assignments=[pb.Assignment(task_id=t) for t in task_ids])
    return pb.ConnectResponse(assignments=batch)


def _ack(*attempt_ids: str) -> pb.ConnectResponse:
    return pb.ConnectResponse(ack=pb.OutcomeAck(attempt_ids=attempt_ids))


BEAT = pb.ConnectResponse(heartbeat=pb.Heartbeat())


def test_merge_by_kind_in_first_seen_order() -> None:
    merged = merge([_assign("a"), BEAT, _ack("1"), _assign("b", "c"), _ack("2")])
    assert [m.WhichOneof("kind") for m in merged] == ["assignments", "ack"]
    assert [a.task_id for a in merged[0].assignments.assignments] == ["a", "b", "c"]
    assert list(merged[1].ack.attempt_ids) == ["1", "2"]


def test_a_lone_message_is_sent_as_it_is() -> None:
    assert merge([BEAT]) == [BEAT]


def test_drain_merges_what_waits_and_stops_at_none() -> None:
    async def main() -> list[pb.ConnectResponse]:
        outbox: asyncio.Queue[pb.ConnectResponse | None] = asyncio.Queue()
        for message in (_assign("a"), _assign("b"), _ack("1"), None):
            outbox.put_nowait(message)
        return [m async for m in drain(outbox, 10.0, BEAT)]

    sent = asyncio.run(main())
    assert [m.WhichOneof("kind") for m in sent] == ["assignments", "ack"]
    assert len(sent[0].assignments.assignments) == 2


def test_drain_sends_a_heartbeat_when_idle() -> None:
    async def main() -> pb.ConnectResponse:
        outbox: asyncio.Queue[pb.ConnectResponse | None] = asyncio.Queue()
        stream = drain(outbox, 0.01, BEAT)
        return await anext(stream)

    assert asyncio.run(main()) == BEAT


def _assign_sized(task_id: str, size: int) -> pb.ConnectResponse:
    assignment = pb.Assignment(task_id=task_id, payload=b"p" * size)
    return pb.ConnectResponse(assignments=pb.AssignmentBatch(assignments=[assignment]))


def _task_ids(messages: list[pb.ConnectResponse]) -> list[str]:
    return [a.task_id for m in messages for a in m.assignments.assignments]


def test_drain_never_merges_past_the_message_limit() -> None:
    async def main() -> list[pb.ConnectResponse]:
        outbox: asyncio.Queue[pb.ConnectResponse | None] = asyncio.Queue()
        for i in range(5):  # 75 MiB in all: more than one gRPC message may carry
            outbox.put_nowait(_assign_sized(str(i), 15 * 1024 * 1024))
        outbox.put_nowait(None)
        return [m async for m in drain(outbox, 10.0, BEAT)]

    sent = asyncio.run(main())
    assert _task_ids(sent) == ["0", "1", "2", "3", "4"]
    assert all(m.ByteSize() < MAX_MESSAGE_BYTES for m in sent)
    assert max(m.ByteSize() for m in sent) <= 16 * 1024 * 1024


def test_merge_stays_within_the_byte_budget_and_keeps_order() -> None:
    messages = [_assign_sized(str(i), 300) for i in range(10)]
    merged = merge(messages, max_bytes=1000)
    assert _task_ids(merged) == [str(i) for i in range(10)]
    assert all(m.ByteSize() <= 1000 for m in merged)
    assert [len(m.assignments.assignments) for m in merged] == [3, 3, 3, 1]


def test_merge_bounds_the_item_count() -> None:
    merged = merge([_ack(f"{i}a", f"{i}b", f"{i}c") for i in range(5)], max_items=7)
    assert [len(m.ack.attempt_ids) for m in merged] == [6, 6, 3]
    assert [a for m in merged for a in m.ack.attempt_ids][:4] == ["0a", "0b", "0c", "1a"]


def test_a_message_over_the_budget_goes_alone_and_order_holds() -> None:
    merged = merge(
        [_assign_sized("a", 10), _assign_sized("big", 5000), _assign_sized("b", 10)], max_bytes=1000
    )
    assert [_task_ids([m]) for m in merged] == [["a"], ["big"], ["b"]]


def test_merge_leaves_the_given_messages_as_they_were() -> None:
    first, second = _ack("1"), _ack("2")
    merge([first, second])
    assert list(first.ack.attempt_ids) == ["1"]


def test_split_keeps_bodies_before_assignments_within_the_budget() -> None:
    bodies = [pb.FunctionBody(function_id=f"f{i}", payload=b"b" * 400) for i in range(3)]
    assignments = [pb.Assignment(task_id=f"t{i}", payload=b"p" * 400) for i in range(4)]
    batch = pb.AssignmentBatch(functions=bodies, assignments=assignments)
    parts = split(batch, max_bytes=1000)
    assert all(p.ByteSize() <= 1000 for p in parts)
    assert [f.function_id for p in parts for f in p.functions] == ["f0", "f1", "f2"]
    assert [a.task_id for p in parts for a in p.assignments] == ["t0", "t1", "t2", "t3"]
    # f2 and t0 share a part: the body is read before the assignment that needs it.
    assert [(len(p.functions), len(p.assignments)) for p in parts] == [
        (2, 0),
        (1, 1),
        (0, 2),
        (0, 1),
    ]


def test_split_puts_an_item_over_the_budget_alone() -> None:
    outcomes = [
        pb.TaskOutcome(attempt_id=str(i), result=b"r" * n) for i, n in enumerate([10, 5000, 10])
    ]
    parts = split(pb.TaskOutcomeBatch(outcomes=outcomes), max_bytes=1000)
    assert [[o.attempt_id for o in p.outcomes] for p in parts] == [["0"], ["1"], ["2"]]


def test_split_bounds_the_item_count() -> None:
    parts = split(pb.OutcomeAck(attempt_ids=[str(i) for i in range(10)]), max_items=4)
    assert [list(p.attempt_ids) for p in parts] == [
        ["0", "1", "2", "3"],
        ["4", "5", "6", "7"],
        ["8", "9"],
    ]


def test_split_returns_a_batch_within_the_budget_as_it_is() -> None:
    batch = pb.TaskSpecBatch(tasks=[pb.TaskSpec(task_id="a", payload=b"x" * 100)])
    assert split(batch)[0] is batch


def _outcome(attempt_id: str, size: int) -> pb.TaskOutcome:
    return pb.TaskOutcome(attempt_id=attempt_id, status=COMPLETED, result=b"r" * size)


def test_a_worker_resends_its_unacknowledged_outcomes_in_bounded_messages() -> None:
    async def main() -> list[pb.ConnectRequest]:
        worker = Worker(WorkerSettings(processes=1))
        for i in range(5):  # 75 MiB of outcomes waiting for a reconnect
            worker._unacked[str(i)] = _outcome(str(i), 15 * 1024 * 1024)
        outbox: asyncio.Queue[pb.ConnectRequest | None] = asyncio.Queue()
        worker._on_welcome(pb.Welcome(mode="push"), outbox)
        outbox.put_nowait(None)
        return [m async for m in drain(outbox, 10.0, pb.ConnectRequest())]

    sent = asyncio.run(main())
    assert [o.attempt_id for m in sent for o in m.outcomes.outcomes] == ["0", "1", "2", "3", "4"]
    assert all(m.ByteSize() <= 16 * 1024 * 1024 for m in sent)


def test_an_outcome_no_message_can_carry_is_sent_as_a_result_too_large_failure() -> None:
    outcomes: list[pb.TaskOutcome] = []
    worker = Worker(WorkerSettings(processes=1))
    worker._send = lambda request: outcomes.extend(request.outcomes.outcomes)  # type: ignore[method-assign]

    async def main() -> None:
        for attempt_id, size in (("big", 70_000_000), ("small", 10)):
            worker._on_outcome(
                Outcome(
                    task_id=attempt_id,
                    attempt_id=attempt_id,
                    status=COMPLETED,
                    result=b"x" * size,
                    cause=0,
                    message="",
                    traceback="",
                )
            )
        await asyncio.sleep(0)  # the flush runs on the next loop turn

    asyncio.run(main())
    big, small = outcomes
    assert big.status == common_pb2.TASK_STATUS_FAILED
    assert big.error.cause == common_pb2.FAILURE_CAUSE_RESULT_TOO_LARGE
    assert "70000" in big.error.message and big.ByteSize() < 10_000
    assert isinstance(pickle.loads(big.result), ValueError)
    assert small.status == COMPLETED and small.result == b"x" * 10
    assert worker._unacked["big"] == big  # what is re-sent after a reconnect is the failure


def test_the_gateway_hands_big_tasks_of_one_loop_turn_over_in_bounded_messages() -> None:
    async def main() -> list[pb.LinkRequest]:
        channel = grpc.aio.insecure_channel("127.0.0.1:9")  # never used: nothing connects
        link = DispatcherLink(channel, TaskWaiters())
        link._connected.set()
        for i in range(5):  # five 15 MiB tasks stored in one batch: 75 MiB
            link.send(pb.TaskSpec(task_id=str(i), payload=b"a" * 15 * 1024 * 1024))
        await asyncio.sleep(0)  # the flush runs on the next loop turn
        await channel.close()
        return [link._outbox.get_nowait() for _ in range(link._outbox.qsize())]

    sent = asyncio.run(main())
    assert [t.task_id for m in sent for t in m.tasks.tasks] == ["0", "1", "2", "3", "4"]
    assert all(m.ByteSize() <= 16 * 1024 * 1024 for m in sent)


def test_split_copies_singular_fields_into_each_part() -> None:
    hello = pb.WorkerHello(worker_id="w", capacity=2, running_attempt_ids=["a", "b", "c"])
    parts = split(hello, max_items=2)
    assert [(p.worker_id, p.capacity, list(p.running_attempt_ids)) for p in parts] == [
        ("w", 2, ["a", "b"]),
        ("w", 2, ["c"]),
    ]
