"""The worker's function-body cache, bounded in bytes, and the dispatcher's mirror of it.

A worker keeps the bodies it was sent so that each function crosses the stream once per
connection. To bound that memory without a round trip, both sides apply one deterministic rule
to every AssignmentBatch, in the order the stream carries them:

1. each body the batch carries is put in (most recently used);
2. each assignment's function is touched (most recently used);
3. while the bodies held exceed the budget, the least recently used one is evicted, unless
   the batch itself carries or uses it.

The worker applies it to the batches it receives and keeps the bodies; the dispatcher applies it
to the batches it sends, with sizes only, and so knows which bodies the worker still holds: a
batch for an evicted function carries its body again. Both start empty on every connection. A
budget of 0 keeps everything (the old protocol, for workers that announce no budget).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from faas.v1 import dispatcher_pb2

__all__ = ["FUNCTION_CACHE_BYTES", "FunctionCache"]

FUNCTION_CACHE_BYTES = 256 * 1024 * 1024
"""The default budget of a worker's (and local mode's) function-body cache."""


class FunctionCache:
    """Function ids (with their bodies, or only their sizes) under the rule above."""

    def __init__(self, max_bytes: int, *, keep_bodies: bool = True) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._keep_bodies = keep_bodies
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._bodies: dict[str, bytes] = {}

    def __contains__(self, function_id: object) -> bool:
        return function_id in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)

    def get(self, function_id: str, default: bytes = b"") -> bytes:
        """The body held for ``function_id`` (``default`` when none is)."""
        return self._bodies.get(function_id, default)

    def clear(self) -> None:
        """A new connection: nothing is held."""
        self._sizes.clear()
        self._bodies.clear()
        self.size = 0

    def missing(self, function_ids: Iterable[str]) -> list[str]:
        """Of ``function_ids``, those whose bodies a batch must carry (in first-seen order)."""
        return [f for f in dict.fromkeys(function_ids) if f not in self._sizes]

    def apply(self, batch: dispatcher_pb2.AssignmentBatch) -> list[str]:
        """Applies the rule to one batch as sent or received; returns the evicted ids."""
        protected: set[str] = set()
        for body in batch.functions:
            self._put(body.function_id, body.payload)
            protected.add(body.function_id)
        for assignment in batch.assignments:
            function_id = assignment.function_id
            protected.add(function_id)
            if function_id in self._sizes:
                self._sizes.move_to_end(function_id)
        if self.max_bytes <= 0:
            return []
        evicted: list[str] = []
        if self.size > self.max_bytes:
            for function_id in list(self._sizes):  # least recently used first
                if self.size <= self.max_bytes:
                    break
                if function_id in protected:
                    continue
                self.size -= self._sizes.pop(function_id)
                self._bodies.pop(function_id, None)
                evicted.append(function_id)
        return evicted

    def _put(self, function_id: str, body: bytes) -> None:
        old = self._sizes.pop(function_id, None)
        if old is not None:
            self.size -= old
        self._sizes[function_id] = len(body)
        self.size += len(body)
        if self._keep_bodies:
            self._bodies[function_id] = body
