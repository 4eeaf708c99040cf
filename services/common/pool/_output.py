"""The parent's end of a child's stdout and stderr: a bounded capture per job."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["OutputCapture"]

_CHUNK = 1 << 16
# How many chunks one drain reads at most. A child's own writes have all landed in the pipe
# (at most its capacity, 64 KiB by default) by the time it reports; the bound keeps a
# grandchild that writes without pause from holding the event loop.
_DRAIN_CHUNKS = 32


class OutputCapture:
    """Reads a child's output without blocking and keeps the first ``limit`` bytes of each job.

    Bytes beyond the limit, and bytes that arrive while no job runs, are read and dropped, so
    the child never blocks on a full pipe.
    """

    def __init__(self, reader: Connection[Any, Any], limit: int) -> None:
        self._reader = reader
        self._limit = limit
        self._kept = bytearray()
        self._dropped = 0
        self._active = False
        self.eof = False
        os.set_blocking(reader.fileno(), False)

    @property
    def fileno(self) -> int:
        """The pipe's read end, for ``loop.add_reader``."""
        return self._reader.fileno()

    def read(self) -> int:
        """Take in one chunk if there is one and return its size; ``eof`` once writers are gone."""
        if self.eof:
            return 0
        try:
            data = os.read(self.fileno, _CHUNK)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            data = b""
        if not data:
            self.eof = True
        elif self._active:
            room = max(self._limit - len(self._kept), 0)
            self._kept += data[:room]
            self._dropped += len(data) - min(room, len(data))
        return len(data)

    def begin(self) -> None:
        """Start a job's capture; what is still in the pipe belonged to nobody."""
        self._active = False
        self._drain()
        self._kept.clear()
        self._dropped = 0
        self._active = True

    def take(self) -> str:
        """End the job's capture and return it, with a marker when some was dropped."""
        self._drain()
        text = self._kept.decode("utf-8", "replace")
        if self._dropped:
            text += (
                f"\n[output truncated: {self._dropped} more bytes dropped,"
                f" limit {self._limit} bytes]\n"
            )
        self._kept.clear()
        self._dropped = 0
        self._active = False
        return text

    def close(self) -> None:
        """Close the read end; writers left (a grandchild) then get EPIPE."""
        self._reader.close()
        self.eof = True

    def _drain(self) -> None:
        for _ in range(_DRAIN_CHUNKS):
            if not self.read():
                return
