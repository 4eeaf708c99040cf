"""A modest one-line progress display on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

_SPINNER = "|/-\\"
_BAR_WIDTH = 30


class Progress:
    """Redraws one status line in place once a wait has lasted ``delay`` seconds; ``close()``
    erases it. Disabled (every method a no-op) unless ``enabled`` is true, which defaults to
    whether ``stream`` is a TTY, so scripts and pipes never see it::

        with Progress() as progress:
            progress.count(3, 10, "tasks")     # [#########        ]  3/10 tasks  1.2s
    """

    def __init__(
        self, stream: TextIO | None = None, enabled: bool | None = None, delay: float = 0.5
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = self._stream.isatty() if enabled is None else enabled
        self._delay = delay  # nothing is drawn for waits shorter than this (seconds)
        self._start = time.monotonic()
        self._ticks = 0
        self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def spin(self, text: str) -> None:
        """A spinner, ``text`` and the time elapsed: for a wait of unknown length."""
        self._ticks += 1
        self._draw(f"{_SPINNER[self._ticks % len(_SPINNER)]} {text}  {self.elapsed:.1f}s")

    def count(self, done: int, total: int, what: str) -> None:
        """A bar of ``done`` out of ``total``."""
        filled = _BAR_WIDTH * done // total if total else _BAR_WIDTH
        bar = "#" * filled + " " * (_BAR_WIDTH - filled)
        width = len(str(total))
        self._draw(f"[{bar}] {done:>{width}}/{total} {what}  {self.elapsed:.1f}s")

    def _draw(self, line: str) -> None:
        if not self.enabled or self.elapsed < self._delay:
            return
        padding = " " * max(0, self._width - len(line))
        self._stream.write(f"\r{line}{padding}")
        self._stream.flush()
        self._width = len(line)

    def close(self) -> None:
        """Erases the line (if one was drawn)."""
        if self.enabled and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0
