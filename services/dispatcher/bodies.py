"""The dispatcher's cache of function bodies (read from Redis): least recently used evicted past
a budget in bytes, so many or large functions cannot grow it without bound. A function whose
body is missing is not cached at all: it is read again when a task needs it."""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["BodyCache"]


class BodyCache:
    """Function bodies by function id, bounded in bytes (LRU)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._bodies: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._bodies)

    def __contains__(self, function_id: object) -> bool:
        return function_id in self._bodies

    def get(self, function_id: str) -> bytes | None:
        body = self._bodies.get(function_id)
        if body is not None:
            self._bodies.move_to_end(function_id)
        return body

    def put(self, function_id: str, body: bytes) -> None:
        """Keeps ``body`` (one larger than the whole budget is not kept), evicting the least
        recently used bodies until the rest fits."""
        old = self._bodies.pop(function_id, None)
        if old is not None:
            self.size -= len(old)
        if not body or len(body) > self.max_bytes:
            return
        self._bodies[function_id] = body
        self.size += len(body)
        while self.size > self.max_bytes:
            _, evicted = self._bodies.popitem(last=False)
            self.size -= len(evicted)
