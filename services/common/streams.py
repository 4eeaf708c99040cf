"""Outgoing stream messages: bounded batches, drained from a queue and merged, so a busy stream
sends fewer messages and never one over gRPC's message limit.

Every stream message is an envelope with a ``oneof kind`` whose payloads are batches (repeated
fields). While one write is under way, more messages queue up; the next write merges those that
are waiting by kind (protobuf ``MergeFrom`` concatenates repeated fields), so batches grow with
load and an idle stream still sends each message at once. A merged message stays within a byte
budget and an item count; a batch built at its source over that budget is ``split`` there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from google.protobuf.message import Message

from .grpc_server import MAX_MESSAGE_BYTES

M = TypeVar("M", bound=Message)

BATCH_BYTES = 8 * 1024 * 1024
"""The most bytes a batch carries, unless one item is bigger; far below ``MAX_MESSAGE_BYTES``."""

BATCH_ITEMS = 4096
"""The most items (elements of its repeated fields) a batch carries."""

MAX_ITEM_BYTES = MAX_MESSAGE_BYTES - 1024 * 1024
"""The largest item that can still be sent, alone, with room left for its envelope."""

_ITEM_OVERHEAD = 6  # a repeated element's field tag (1 byte) and length prefix (up to 5)


def item_count(message: Message, kind: str | None = None) -> int:
    """How many elements the repeated fields of ``message``'s oneof payload (``kind``) hold."""
    kind = kind or message.WhichOneof("kind")
    if not kind:
        return 0
    payload: Message = getattr(message, kind)
    names = _REPEATED.get(type(payload))
    if names is None:
        names = _REPEATED[type(payload)] = tuple(
            f.name for f in payload.DESCRIPTOR.fields if f.is_repeated
        )
    return sum(len(getattr(payload, name)) for name in names)


_REPEATED: dict[type[Message], tuple[str, ...]] = {}  # a batch type -> its repeated fields


def split(batch: M, max_bytes: int = BATCH_BYTES, max_items: int = BATCH_ITEMS) -> list[M]:
    """``batch`` (a message of repeated fields) as batches of its type within the budget.

    Elements keep their order, fields in field-number order (so an ``AssignmentBatch``'s
    function bodies still come before the assignments that need them); any singular field is
    copied into each part. An element over ``max_bytes`` is a batch of its own: the caller
    decides whether it may be sent (see ``MAX_ITEM_BYTES``).
    """
    fields = [(f, v) for f, v in batch.ListFields() if f.is_repeated]
    if batch.ByteSize() <= max_bytes and sum(len(v) for _, v in fields) <= max_items:
        return [batch]
    common = {f.name: v for f, v in batch.ListFields() if not f.is_repeated}
    parts: list[M] = []
    part: dict[str, list[Any]] = {}
    size = count = 0
    for field, values in fields:
        for value in values:
            item = _ITEM_OVERHEAD + (
                value.ByteSize() if isinstance(value, Message) else len(_encoded(value))
            )
            if count and (size + item > max_bytes or count >= max_items):
                parts.append(type(batch)(**common, **part))
                part, size, count = {}, 0, 0
            part.setdefault(field.name, []).append(value)
            size += item
            count += 1
    if part:
        parts.append(type(batch)(**common, **part))
    return parts


def _copy(message: M) -> M:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def _encoded(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def merge(
    messages: list[M],
    combine: Callable[[M, M], None] | None = None,
    max_bytes: int = BATCH_BYTES,
    max_items: int = BATCH_ITEMS,
) -> list[M]:
    """Messages merged by oneof kind, each merged message within ``max_bytes`` and ``max_items``.

    Order is kept within a kind (a message merges only into the latest one of its kind);
    kinds come in order of first appearance. A message over the budget by itself goes alone.
    Heartbeats are dropped when anything else is sent. ``combine(into, other)`` replaces
    ``MergeFrom`` for kinds it handles (it returns nothing and must merge in place).
    """
    if len(messages) == 1:
        return messages
    groups: list[M] = []
    sizes: list[int] = []  # the sum of the parts' sizes: never less than the merged size
    counts: list[int] = []
    owned: list[bool] = []
    latest: dict[str, int] = {}  # kind -> index in groups of its latest message
    for message in messages:
        kind = message.WhichOneof("kind") or ""
        size, count = message.ByteSize(), item_count(message, kind)
        at = latest.get(kind)
        if at is None or sizes[at] + size > max_bytes or counts[at] + count > max_items:
            latest[kind] = len(groups)
            groups.append(message)
            sizes.append(size)
            counts.append(count)
            owned.append(False)
            continue
        into = groups[at]
        if not owned[at]:  # never change a message the sender may hold (or send elsewhere)
            into = groups[at] = _copy(into)
            owned[at] = True
        if combine is not None:
            combine(into, message)
        else:
            into.MergeFrom(message)
        sizes[at] += size
        counts[at] += count
    if len(latest) > 1:
        groups = [g for g in groups if g.WhichOneof("kind") != "heartbeat"]
    return groups


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
