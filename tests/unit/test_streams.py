"""Merging queued stream messages: batches concatenate, heartbeats yield to real messages."""

from __future__ import annotations

import asyncio

from faas.v1 import dispatcher_pb2 as pb

from services.common.streams import drain, merge


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
