"""The parent's bulk reader of a child's frames, for children that hold queued jobs.

One ``recv`` takes in every frame the child wrote since the last ring, instead of a poll and
two reads per frame; the frames are split here, in ``multiprocessing.Connection``'s framing
(a 4-byte big-endian length, or -1 and an 8-byte length), which the child writes with.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["FrameReader"]

_CHUNK = 1 << 16
_BLOCKING_CHUNK = 1 << 20
_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")


class FrameReader:
    """Splits what arrives on the job pipe into frames; nothing blocks unless asked to."""

    def __init__(self, conn: Connection[Any, Any]) -> None:
        # A descriptor of our own on the same socket; its blocking mode is the connection's.
        self._sock = socket.socket(fileno=os.dup(conn.fileno()))
        self._buffer = bytearray()

    def next(self) -> bytes | None:
        """The next whole frame, reading once without blocking if needed; None if none yet.

        Raises ``EOFError`` once the pipe is closed or shut and every frame was taken.
        """
        frame = self._split()
        if frame is not None:
            return frame
        try:
            data = self._sock.recv(_CHUNK, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise EOFError(str(exc)) from exc
        if not data:
            raise EOFError("the job pipe is closed")
        self._buffer += data
        return self._split()

    def next_blocking(self) -> bytes:
        """The next whole frame, waiting for it (an announced frame the child is writing)."""
        while True:
            frame = self._split()
            if frame is not None:
                return frame
            data = self._sock.recv(_BLOCKING_CHUNK)
            if not data:
                raise EOFError("the job pipe closed inside a frame")
            self._buffer += data

    def close(self) -> None:
        """Close our descriptor (the connection keeps its own)."""
        self._sock.close()

    def _split(self) -> bytes | None:
        buffer = self._buffer
        if len(buffer) < _SHORT.size:
            return None
        (size,) = _SHORT.unpack_from(buffer)
        start = _SHORT.size
        if size == -1:
            if len(buffer) < _SHORT.size + _LONG.size:
                return None
            (size,) = _LONG.unpack_from(buffer, _SHORT.size)
            start += _LONG.size
        if len(buffer) < start + size:
            return None
        with memoryview(buffer) as view:
            frame = bytes(view[start : start + size])
        del buffer[: start + size]
        return frame
