"""Starting the platform's processes so that they die with the launcher, even on ``kill -9``.

Each child asks the kernel for SIGKILL when its parent dies (Linux's ``PR_SET_PDEATHSIG``). The
kernel sends it when the parent *thread* that forked the child ends, not the process, and the
supervisor restarts parts from a thread of its own that ends before the platform is stopped.
So every such child is forked by one thread that lives as long as the launcher.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

__all__ = ["spawn"]

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` that arms SIGKILL for the child when ``parent`` dies."""

    def arm() -> None:
        if _libc is None or _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return  # not Linux: the child outlives a killed launcher, as before
        if os.getppid() != parent:  # the launcher died before the signal was armed
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


Job = tuple[Callable[[], "subprocess.Popen[bytes]"], "Future[subprocess.Popen[bytes]]"]


class _Spawner:
    """One daemon thread, started on first use and never ended, that forks the children."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def run(self, start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        if threading.current_thread() is self._thread:
            return start()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="spawner", daemon=True)
                self._thread.start()
        future: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((start, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            start, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(start())
            except BaseException as exc:  # handed to the caller, which raises it
                future.set_exception(exc)


_SPAWNER = _Spawner()


def spawn(argv: Sequence[str], *, die_with_launcher: bool, **popen: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **popen)``; with ``die_with_launcher``, the child is SIGKILLed
    by the kernel when this process dies, however it dies.
    """
    if not die_with_launcher:
        return subprocess.Popen(argv, **popen)
    arm = _die_with(os.getpid())
    return _SPAWNER.run(lambda: subprocess.Popen(argv, preexec_fn=arm, **popen))
