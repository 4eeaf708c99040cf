"""A modest one-line progress display on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from .. import _transport

__all__ = ["ConnectingNotice", "Progress"]

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


class ConnectingNotice(logging.Handler):
    """A spinner, "connecting to ADDRESS ...", on a terminal while the SDK waits for its first
    connection to the gateway; erased once it connects or gives up. It follows the SDK's log
    records of that wait (see ``faas._transport``); install it with ``attach()``."""

    _LOGGER = logging.getLogger(_transport.__name__)

    def __init__(self, stream: TextIO, delay: float = 0.15) -> None:
        super().__init__(logging.INFO)
        self._stream = stream
        self._delay = delay  # a connection made within this long shows nothing
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._level = logging.NOTSET

    def attach(self) -> ConnectingNotice:
        self._level = self._LOGGER.level
        if not self._LOGGER.isEnabledFor(logging.INFO):
            self._LOGGER.setLevel(logging.INFO)
        self._LOGGER.addHandler(self)
        return self

    def detach(self) -> None:
        self._LOGGER.removeHandler(self)
        self._LOGGER.setLevel(self._level)
        self.stop()

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "faas_connection", None)
        if event == _transport.CONNECTING:
            self._start(str(getattr(record, "faas_target", "the gateway")))
        elif event is not None:
            self.stop()

    def _start(self, target: str) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._done.clear()
            self._thread = threading.Thread(
                target=self._spin, args=(f"connecting to {target} ...",), daemon=True
            )
            self._thread.start()

    def _spin(self, text: str) -> None:
        with Progress(self._stream, enabled=True, delay=self._delay) as progress:
            while not self._done.wait(0.1):
                progress.spin(text)

    def stop(self) -> None:
        """Erases the spinner (if it is drawn) and waits for its thread."""
        with self._lock:
            self._done.set()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
