"""Keeps the platform's processes running (``make run``): a process that dies is restarted after
a capped, doubling delay, and one that keeps dying is given up on, with its last log lines.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


def describe_exit(returncode: int | None) -> str:
    """``exit code 1`` or ``killed by SIGKILL``, from a Popen return code."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class Supervised(Protocol):
    """A process the supervisor watches: a service, a worker or the embedded Redis."""

    @property
    def name(self) -> str: ...

    @property
    def pid(self) -> int: ...

    def alive(self) -> bool: ...

    def exit_description(self) -> str: ...

    def start(self, wait: bool = True) -> None: ...

    def tail(self, lines: int) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How soon a dead process is restarted, and when to give up on it."""

    first_delay: float = 0.5  # seconds before the first restart in a row
    max_delay: float = 10.0  # the delay doubles per restart in a row, up to this
    reset_after: float = 30.0  # a process that ran this long starts again from first_delay
    max_deaths: int = 5  # this many deaths ...
    window: float = 60.0  # ... within this many seconds: give up
    tail_lines: int = 20  # log lines shown when giving up

    def delay(self, restarts: int) -> float:
        """The delay before restart number ``restarts`` (1, 2, ...) of a run of deaths."""
        return float(min(self.max_delay, self.first_delay * 2 ** (restarts - 1)))


@dataclass(slots=True)
class _Record:
    started: float
    restarts: int = 0
    deaths: deque[float] = field(default_factory=deque)
    restart_at: float | None = None


class Supervisor:
    """Watches ``children()`` (read at every step, so new workers count) from a thread."""

    def __init__(
        self,
        children: Callable[[], Sequence[Supervised]],
        policy: RestartPolicy | None = None,
        *,
        interval: float = 0.1,
    ) -> None:
        self._children = children
        self.policy = policy or RestartPolicy()
        self._interval = interval
        self._records: dict[int, _Record] = {}
        self._paused = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: str | None = None  # why it gave up, with the log lines; None while fine

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        """Restarts nothing from now on (safe to call from a signal handler)."""
        self._paused.set()

    def stop(self) -> None:
        self.pause()
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.step(time.monotonic())
            except Exception:  # a bug here must not end supervision silently
                log.exception("supervision step failed")

    def step(self, now: float) -> None:
        """One look at every child at time ``now``: notes deaths, restarts those that are due."""
        for child in list(self._children()):
            if self._paused.is_set() or self.failure is not None:
                return
            record = self._records.setdefault(id(child), _Record(started=now))
            if record.restart_at is None:
                if not child.alive():
                    self._died(child, record, now, f"({child.exit_description()})")
            elif now >= record.restart_at:
                self._restart(child, record, now)

    def _restart(self, child: Supervised, record: _Record, now: float) -> None:
        record.restart_at = None
        record.started = now
        try:
            child.start(wait=False)
        except Exception as exc:
            self._died(child, record, now, f"and could not be restarted ({exc})")
            return
        log.info("restarted %s (pid %d)", child.name, child.pid)

    def _died(self, child: Supervised, record: _Record, now: float, how: str) -> None:
        policy = self.policy
        if now - record.started >= policy.reset_after:
            record.restarts = 0
        record.deaths.append(now)
        while record.deaths[0] <= now - policy.window:
            record.deaths.popleft()
        if len(record.deaths) >= policy.max_deaths:
            lines = "".join(f"\n    {line}" for line in child.tail(policy.tail_lines))
            self.failure = (
                f"{child.name} died {len(record.deaths)} times within {policy.window:g} s; "
                f"giving up; last lines of its log:{lines}"
            )
            log.error("%s (pid %d) died %s", child.name, child.pid, how)
            log.error("%s", self.failure)
            return
        record.restarts += 1
        delay = policy.delay(record.restarts)
        log.warning("%s (pid %d) died %s; restarting it in %g s", child.name, child.pid, how, delay)
        record.restart_at = now + delay
