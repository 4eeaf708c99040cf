"""The launcher's terminal: its own lines and its children's output, copied line by line.

Writing never fails: once the reader of a stream is gone (``make run | head -1``), the stream is
pointed at /dev/null, so nothing (Ctrl-C's clean-up included) ends with a BrokenPipeError, and
children's output is still drained, so a child never blocks on a full pipe.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from typing import IO, TextIO


class Sink:
    """One of the launcher's own streams (stdout or stderr), shared by threads, never failing."""

    def __init__(self, name: str) -> None:
        self._name = name  # "stdout" or "stderr": looked up when used, as tests replace them
        self._lock = threading.Lock()
        self._broken = False

    @property
    def _stream(self) -> TextIO:
        stream: TextIO = getattr(sys, self._name)
        return stream

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._broken:
                return
            stream = self._stream
            try:
                stream.flush()
                stream.buffer.write(data)
                stream.buffer.flush()
            except (OSError, ValueError):
                self._discard(stream)

    def say(self, text: str) -> None:
        """Writes ``text`` and a newline."""
        self.write(f"{text}\n".encode())

    def _discard(self, stream: TextIO) -> None:
        self._broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            return


STDOUT = Sink("stdout")
STDERR = Sink("stderr")


class Relay:
    """Copies a child's stream to a sink line by line and keeps its last lines."""

    def __init__(self, source: IO[bytes], sink: Sink, tail: deque[str]) -> None:
        self._source = source
        self._sink = sink
        self._tail = tail
        self._thread = threading.Thread(target=self._copy, name="relay", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        with self._source:
            for line in iter(self._source.readline, b""):
                self._tail.append(line.decode(errors="replace").rstrip("\n"))
                self._sink.write(line)
