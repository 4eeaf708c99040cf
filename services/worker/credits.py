"""Pull mode's credits: how much work the worker asks for, so that its processes never wait.

Pure bookkeeping, no I/O, so it is unit-tested on its own. The worker wants to hold its
processes plus a prefetch that follows how fast it drains (enough for
``PREFETCH_HORIZON_SECONDS`` more at its rate, never more than ``max_prefetch``), as the
dispatcher's push mode does for its workers (``Session.retarget``). Tasks held and credits
asked for but not answered yet both count, so it never asks twice for the same room; and no
more than ``max_unanswered`` credits are ever unanswered: as many as the dispatcher says it
keeps (``Welcome.max_credits``), so it drops none of them.
"""

from __future__ import annotations

import math

__all__ = ["PREFETCH_HORIZON_SECONDS", "Credits"]

# The prefetch keeps the processes busy this much longer at the rate the worker drains, which
# covers a round trip to the dispatcher with room to spare.
PREFETCH_HORIZON_SECONDS = 0.1
# The drain rate is measured over windows at least this long, and smoothed.
_RATE_WINDOW_SECONDS = 0.2


class Credits:
    """The credits of one worker: what it holds, what it asked for, and what to ask next."""

    def __init__(self, processes: int, max_prefetch: int, max_unanswered: int, now: float) -> None:
        if processes < 1 or max_prefetch < 0 or max_unanswered < 1:
            raise ValueError("needs a process, a prefetch of 0 or more and a credit to ask")
        self.processes = processes
        self.max_prefetch = max_prefetch
        self.max_unanswered = max_unanswered
        self.unanswered = 0  # credits asked for that no assignment answered yet
        self.drain_rate = 0.0  # outcomes per second, smoothed
        self._target = -1  # the prefetch that follows the drain rate (-1: none measured yet)
        self._drained = 0
        self._window_start = now

    @property
    def prefetch(self) -> int:
        """How many tasks beyond its processes the worker wants to hold now."""
        if self._target < 0:  # no drain rate measured yet: as many as its processes
            return min(self.processes, self.max_prefetch)
        return self._target

    def wanted(self) -> int:
        """How many tasks the worker wants to hold (running, queued and asked for)."""
        return self.processes + self.prefetch

    def connected(self, max_credits: int) -> None:
        """A new session, whose dispatcher keeps ``max_credits`` unanswered at most (0: as many
        as the processes); it keeps no credit of an ended session."""
        self.max_unanswered = max_credits or self.processes
        self.unanswered = 0

    def received(self, count: int) -> None:
        """``count`` assignments came: each answers one credit."""
        self.unanswered = max(0, self.unanswered - count)

    def drained(self, count: int, now: float) -> None:
        """``count`` tasks ended; once a window has passed, the prefetch follows the new rate."""
        self._drained += count
        span = now - self._window_start
        if span < _RATE_WINDOW_SECONDS:
            return
        rate = self._drained / span
        self.drain_rate = rate if self._target < 0 else (self.drain_rate + rate) / 2
        self._drained, self._window_start = 0, now
        wanted = math.ceil(self.drain_rate * PREFETCH_HORIZON_SECONDS)
        self._target = min(max(wanted, 0), self.max_prefetch)

    def ask(self, held: int) -> int:
        """How many credits to ask for now, holding ``held`` tasks; counted as unanswered."""
        room = min(self.wanted() - held - self.unanswered, self.max_unanswered - self.unanswered)
        if room <= 0:
            return 0
        self.unanswered += room
        return room
