"""Outgoing stream messages: drained from a queue and merged, so a busy stream sends fewer.

Every stream message is an envelope with a ``oneof kind`` whose payloads are batches (repeated
fields). While one write is under way, more messages queue up; the next write merges all that
are waiting by kind (protobuf ``MergeFrom`` concatenates repeated fields), so batches grow with
load and an idle stream still sends each message at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


def merge(messages: list[M], combine: Callable[[M, M], None] | None = None) -> list[M]:
    """Messages merged by oneof kind, in order of each kind's first appearance.

    Heartbeats are dropped when anything else is sent. ``combine(into, other)`` replaces
    ``MergeFrom`` for kinds it handles (it returns nothing and must merge in place).
    """
    if len(messages) == 1:
        return messages
    groups: dict[str, M] = {}
    for message in messages:
        kind = message.WhichOneof("kind") or ""
        into = groups.get(kind)
        if into is None:
            groups[kind] = message
        elif combine is not None:
            combine(into, message)
        else:
            into.MergeFrom(message)
    if len(groups) > 1:
        groups.pop("heartbeat", None)
    return list(groups.values())


async def drain(
    outbox: asyncio.Queue[M | None],
    idle_seconds: float,
    heartbeat: M,
    combine: Callable[[M, M], None] | None = None,
) -> AsyncIterator[M]:
    """Messages from ``outbox`` until a None, merged while they wait; a heartbeat when idle."""
    while True:
        try:
            first = await asyncio.wait_for(outbox.get(), timeout=idle_seconds)
        except TimeoutError:
            yield heartbeat
            continue
        waiting: list[M] = []
        message: M | None = first
        while message is not None:
            waiting.append(message)
            if outbox.empty():
                break
            message = outbox.get_nowait()
        for merged in merge(waiting, combine):
            yield merged
        if message is None:
            return
