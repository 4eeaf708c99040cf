"""The dispatcher's report of itself, every heartbeat period: how many workers are connected,
their slots (total and free) and each one's last heartbeat, so that gateways can say why a task
waits (services/gateway/waiting.py) without asking the dispatcher.

A report that Redis does not take is skipped, never retried: the next one replaces it, and the
engine never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from services.common.errors import StoreUnavailable
from services.common.store import Presence, TaskStore

from .scheduler import Scheduler
from .settings import DispatcherSettings

__all__ = ["PresenceReporter"]

log = logging.getLogger(__name__)


class PresenceReporter:
    """Writes :class:`Presence` every ``settings.heartbeat_seconds`` until cancelled."""

    def __init__(
        self, settings: DispatcherSettings, store: TaskStore, scheduler: Scheduler
    ) -> None:
        self._settings = settings
        self._store = store
        self._scheduler = scheduler
        self._failing = False
        # The workers the heartbeats hash names (None: not read yet, at the first report).
        self._named: set[str] | None = None

    def snapshot(self) -> Presence:
        """The report as of now."""
        now, mono = time.time(), time.monotonic()
        sessions = [s for s in self._scheduler.sessions.values() if not s.closed]
        slots = sum(s.capacity for s in sessions)
        free = sum(
            max(s.capacity - len(s.in_flight) - s.reserved, 0) for s in sessions if not s.draining
        )
        beats = {
            # local mode's own processes are in this process: heard from now
            s.worker_id: int((now - (mono - s.last_seen if s.remote else 0.0)) * 1000)
            for s in sessions
        }
        return Presence(
            updated_ms=int(now * 1000),
            interval_ms=int(self._settings.heartbeat_seconds * 1000),
            workers=len(sessions),
            slots=slots,
            free=free,
            heartbeats=beats,
        )

    async def report(self) -> None:
        """One report; a Redis outage or error skips it (logged once per outage)."""
        try:
            await asyncio.wait_for(self._publish(), max(self._settings.heartbeat_seconds, 1.0))
        except (StoreUnavailable, TimeoutError) as exc:
            if not self._failing:
                log.warning(
                    "reporting presence to Redis failed (%s); skipped until it answers", exc
                )
            self._failing = True
        else:
            if self._failing:
                log.info("reporting presence to Redis again")
            self._failing = False

    async def _publish(self) -> None:
        presence = self.snapshot()
        if self._named is None:  # a report of an earlier dispatcher may name others
            self._named = await self._store.presence_workers()
        connected = set(presence.heartbeats)
        await self._store.publish_presence(presence, gone=self._named - connected)
        self._named = connected

    async def run(self) -> None:
        while True:
            await self.report()
            await asyncio.sleep(self._settings.heartbeat_seconds)
