"""The parent's end of a child's stdout and stderr: a bounded capture per job."""

from __future__ import annotations

import collections
import os
from typing import TYPE_CHECKING, Any

from . import _protocol as proto

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["MarkedOutputCapture", "OutputCapture"]

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
        """Start a job's capture (sent to an idle child); what is in the pipe belonged to nobody."""
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

    def take_finished(self) -> str:
        """The output of the job the child has just reported."""
        return self.take()

    def take_running(self) -> str:
        """The output of the job the child was running when it was retired."""
        return self.take()

    def close(self) -> None:
        """Close the read end; writers left (a grandchild) then get EPIPE."""
        self._reader.close()
        self.eof = True

    def _drain(self) -> None:
        for _ in range(_DRAIN_CHUNKS):
            if not self.read():
                return


class _Kept:
    """The bounded output of one job."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.dropped = 0

    def add(self, data: bytes, limit: int) -> None:
        room = max(limit - len(self.data), 0)
        self.data += data[:room]
        self.dropped += len(data) - min(room, len(data))

    def text(self, limit: int) -> str:
        text = self.data.decode("utf-8", "replace")
        if self.dropped:
            text += (
                f"\n[output truncated: {self.dropped} more bytes dropped, limit {limit} bytes]\n"
            )
        return text


class MarkedOutputCapture:
    """The output of a child that runs queued jobs: split per job at the child's markers.

    The child writes ``marker + START`` before each job and ``marker + END`` after it has
    flushed the job's output, before it reports the job. What lies between two jobs belongs
    to nobody and is dropped; each job keeps its first ``limit`` bytes.
    """

    def __init__(self, reader: Connection[Any, Any], limit: int, marker: bytes) -> None:
        self._reader = reader
        self._limit = limit
        self._marker = marker
        self._tail = b""  # bytes that may be the start of a marker
        self._current: _Kept | None = None  # the job between START and END
        self._finished: collections.deque[_Kept] = collections.deque()
        self._missing = 0  # finished jobs whose END marker was not found when they were taken
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
        else:
            self._feed(data)
        return len(data)

    def begin(self) -> None:
        """Nothing to do: the child marks where each job starts."""

    def take_finished(self) -> str:
        """The output of the oldest job the child has finished, and not yet taken."""
        if not self._finished:  # its END marker is still in the pipe
            self._drain()
        if not self._finished:
            # The END marker is beyond what one drain reads (a grandchild floods the pipe):
            # give what there is, and skip that marker when it comes.
            kept, self._current = self._current or _Kept(), None
            self._missing += 1
            return kept.text(self._limit)
        return self._finished.popleft().text(self._limit)

    def take_running(self) -> str:
        """The output of the job running when the child was retired (what is after START)."""
        self._drain()
        if self._tail and self._current is not None:
            self._current.add(self._tail, self._limit)
        self._tail = b""
        kept, self._current = self._current, None
        return kept.text(self._limit) if kept is not None else ""

    def close(self) -> None:
        """Close the read end; writers left (a grandchild) then get EPIPE."""
        self._reader.close()
        self.eof = True

    def _drain(self) -> None:
        for _ in range(_DRAIN_CHUNKS):
            if not self.read():
                return

    def _feed(self, data: bytes) -> None:
        data = self._tail + data if self._tail else data
        marker = self._marker
        size = len(marker) + 1
        position = 0
        while True:
            found = data.find(marker, position)
            if found < 0 or found + size > len(data):
                # Keep what could be the beginning of a marker for the next chunk.
                cut = found if found >= 0 else max(position, len(data) - size + 1)
                self._keep(data[position:cut])
                self._tail = data[cut:]
                return
            self._keep(data[position:found])
            self._mark(data[found + len(marker) : found + size])
            position = found + size

    def _keep(self, data: bytes) -> None:
        if data and self._current is not None:
            self._current.add(data, self._limit)

    def _mark(self, kind: bytes) -> None:
        if kind == proto.START:
            self._current = _Kept()
        elif kind == proto.END:
            if self._missing:
                self._missing -= 1
            elif self._current is not None:
                self._finished.append(self._current)
            self._current = None
