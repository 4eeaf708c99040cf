"""Listings of a tenant's tasks and functions, newest first, read from the listing indexes.

Each listing walks one sorted set (``tasks:{tenant}``, ``function-tasks:{id}`` or
``functions:{tenant}``, see :mod:`keys`) from a :class:`Cursor`, reads the hashes of the ids it
meets in pipelined batches, and stops when the page is full, the index ends, the time bound is
passed or its budget of examined ids is spent: then the page is short and has a cursor all the
same (AIP-158 allows short pages). An id whose hash is gone (an expired task) is taken out of
the index as it is met. No call reads more than its budget of hashes, whatever the index holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import redis.asyncio as aioredis

from ._records import TaskRecord

# KEYS: an index. ARGV: has_cursor "1"|"0", cursor score, cursor member, before (ms, exclusive;
# "" for none), count. Returns up to count {member, score, ...} newest first: after the cursor
# when given (from its rank; when its member is gone, after the members of its score that sort
# above it), else from the newest created before ``before``. Ties (one batch's tasks share a
# creation time) sort by member, descending, as ZREVRANGE orders them.
RANGE = """
local key, count = KEYS[1], tonumber(ARGV[5])
local start = 0
if ARGV[1] == '1' then
  local rank = redis.call('ZREVRANK', key, ARGV[3])
  if rank then
    start = rank + 1
  else
    local score, member = tonumber(ARGV[2]), ARGV[3]
    start = redis.call('ZCOUNT', key, '(' .. ARGV[2], '+inf')
    while true do
      local e = redis.call('ZREVRANGE', key, start, start, 'WITHSCORES')
      if #e == 0 or tonumber(e[2]) ~= score or e[1] < member then
        break
      end
      start = start + 1
    end
  end
elseif ARGV[4] ~= '' then
  start = redis.call('ZCOUNT', key, ARGV[4], '+inf')
end
return redis.call('ZREVRANGE', key, start, start + count - 1, 'WITHSCORES')
"""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a listing resumes: after the entry of this creation time (ms) and id."""

    score: int
    member: str


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks a listing returns; empty or None fields do not filter."""

    statuses: frozenset[str] = frozenset()
    function_id: str = ""
    worker_id: str = ""
    created_after_ms: int | None = None  # inclusive
    created_before_ms: int | None = None  # exclusive

    def matches(self, record: TaskRecord) -> bool:
        return (
            (not self.statuses or record.status in self.statuses)
            and (not self.function_id or record.function_id == self.function_id)
            and (not self.worker_id or record.worker_id == self.worker_id)
        )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page: the items, and the cursor to resume after them (None: the listing ended).
    ``examined`` is how many index entries (and so hashes) the call read."""

    items: list[T]
    cursor: Cursor | None
    examined: int


# Reads the hashes of a batch of ids: an item, or None for an id with no hash (to drop) or one
# the listing skips (not the caller's, not matching). The bool says the hash was there.
BatchReader = Callable[[Sequence[str]], Awaitable[list[tuple[bool, T | None]]]]


class IndexWalker:
    """Pages through one index newest first (see the module docstring)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._range = client.register_script(RANGE)

    async def page(
        self,
        index: str,
        read: BatchReader[T],
        *,
        page_size: int,
        budget: int,
        cursor: Cursor | None = None,
        after_ms: int | None = None,
        before_ms: int | None = None,
    ) -> Page[T]:
        """Up to ``page_size`` items from ``index``, reading at most ``budget`` hashes."""
        items: list[T] = []
        examined = 0
        position = cursor
        while len(items) < page_size and examined < budget:
            count = min(budget - examined, max(page_size - len(items), 16))
            rows = await self._entries(index, position, before_ms, count)
            ended = len(rows) < count
            if after_ms is not None:
                kept = [row for row in rows if row[1] >= after_ms]
                ended = ended or len(kept) < len(rows)
                rows = kept
            if not rows:
                return Page(items, None, examined)
            found = await read([member for member, _ in rows])
            examined += len(rows)
            gone = [m for (m, _), (exists, _) in zip(rows, found, strict=True) if not exists]
            if gone:
                await self._client.zrem(index, *gone)
            for (member, score), (_, item) in zip(rows, found, strict=True):
                position = Cursor(score, member)
                if item is not None:
                    items.append(item)
                    if len(items) == page_size:
                        break
            if ended and position == Cursor(rows[-1][1], rows[-1][0]):
                return Page(items, None, examined)
        return Page(items, position, examined)

    async def _entries(
        self, index: str, cursor: Cursor | None, before_ms: int | None, count: int
    ) -> list[tuple[str, int]]:
        args: list[Any] = [
            "1" if cursor else "0",
            cursor.score if cursor else 0,
            cursor.member if cursor else "",
            "" if before_ms is None else before_ms,
            count,
        ]
        raw = cast("list[bytes]", await self._range(keys=[index], args=args))
        return [(raw[i].decode(), int(float(raw[i + 1]))) for i in range(0, len(raw), 2)]
