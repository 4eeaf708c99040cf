"""Why a task that has not ended is where it is, from its record and the dispatcher's last
report of itself (services/dispatcher/presence.py), read from Redis at most every half second
per gateway process."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from faas.v1 import common_pb2, gateway_pb2

from services.common.store import Presence, TaskRecord, TaskStore
from services.common.timeutil import ms_timestamp

__all__ = ["Wait", "WaitReasons", "explain"]

# How long one read of the dispatcher's report answers every call of this process.
_CACHE_SECONDS = 0.5
# The dispatcher is silent when its last report is older than this many of its periods (and
# at least _MIN_SILENT_MS); a worker, when its last heartbeat is.
_SILENT_PERIODS = 3
_MIN_SILENT_MS = 3000


@dataclass(frozen=True, slots=True)
class Wait:
    """Why a task waits: a WaitReason, since when (ms), a sentence, and (RUNNING) on which
    worker and how long ago it was last heard from (ms; None when it is not connected)."""

    reason: common_pb2.WaitReason.ValueType
    since_ms: int
    message: str
    worker_id: str = ""
    heartbeat_age_ms: int | None = None


def _silent_after(presence: Presence) -> int:
    return max(_SILENT_PERIODS * presence.interval_ms, _MIN_SILENT_MS)


def _queued(record: TaskRecord, presence: Presence, now_ms: int) -> Wait:
    since = max(record.created_ms, record.requeued_ms)
    if not presence.updated_ms or now_ms - presence.updated_ms > _silent_after(presence):
        quiet = (now_ms - presence.updated_ms) / 1000
        message = (
            f"the dispatcher has not reported for {quiet:.0f}s (down, restarting or cut off)"
            if presence.updated_ms
            else "the dispatcher has not reported yet"
        )
        return Wait(common_pb2.WAIT_REASON_DISPATCHER_SILENT, since, message)
    if presence.workers == 0:  # whatever the task needs (a pending reason says so too)
        return Wait(common_pb2.WAIT_REASON_NO_WORKERS, since, "no worker is connected")
    if record.pending_reason:
        return Wait(common_pb2.WAIT_REASON_NO_MATCHING_WORKER, since, record.pending_reason)
    busy = presence.slots - presence.free
    if presence.free == 0:
        message = f"every worker is busy ({busy} of {presence.slots} processes)"
    else:
        message = (
            f"waiting for a free worker that can take it ({busy} of {presence.slots} "
            "processes busy)"
        )
    return Wait(common_pb2.WAIT_REASON_WORKERS_BUSY, since, message)


def _running(record: TaskRecord, presence: Presence, now_ms: int) -> Wait:
    worker = record.worker_id
    beat = presence.heartbeats.get(worker)
    if beat is None and presence.updated_ms < record.started_ms:
        # The dispatcher's report predates the start, so a worker that joined since is not in
        # it; the dispatcher gave it the task then, connected: heard from at the start.
        age = max(now_ms - record.started_ms, 0)
        return Wait(
            common_pb2.WAIT_REASON_RUNNING,
            record.started_ms,
            f"running on worker {worker} (started {age / 1000:.1f}s ago)",
            worker,
            age,
        )
    if beat is None:
        return Wait(
            common_pb2.WAIT_REASON_WORKER_SILENT,
            record.started_ms,
            f"running on worker {worker}, which the dispatcher does not report as connected",
            worker,
        )
    age = max(now_ms - beat, 0)
    if age > _silent_after(presence):
        return Wait(
            common_pb2.WAIT_REASON_WORKER_SILENT,
            record.started_ms,
            f"running on worker {worker}, whose heartbeats are late (last {age / 1000:.1f}s ago)",
            worker,
            age,
        )
    return Wait(
        common_pb2.WAIT_REASON_RUNNING,
        record.started_ms,
        f"running on worker {worker} (last heartbeat {age / 1000:.1f}s ago)",
        worker,
        age,
    )


def explain(record: TaskRecord, presence: Presence, now_ms: int) -> Wait | None:
    """Why ``record``'s task waits; None once it has ended."""
    if record.status == "QUEUED":
        return _queued(record, presence, now_ms)
    if record.status == "RUNNING":
        return _running(record, presence, now_ms)
    return None


def apply(wait: Wait | None, message: common_pb2.TaskState | gateway_pb2.GetStatusResponse) -> None:
    """Sets the wait_* fields (and heartbeat_age) of a task state or status answer."""
    if wait is None:
        return
    message.wait_reason = wait.reason
    message.wait_message = wait.message
    stamp = ms_timestamp(wait.since_ms)
    if stamp is not None:
        message.wait_since.CopyFrom(stamp)
    if wait.heartbeat_age_ms is not None:
        message.heartbeat_age.FromMilliseconds(wait.heartbeat_age_ms)
    if isinstance(message, gateway_pb2.GetStatusResponse):
        message.worker_id = wait.worker_id


class WaitReasons:
    """Explains tasks with the dispatcher's report, read once per half second at most."""

    def __init__(self, store: TaskStore, cache_seconds: float = _CACHE_SECONDS) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._presence = Presence()
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()

    async def presence(self) -> Presence:
        """The dispatcher's last report, re-read when the one at hand is over half a second old."""
        if time.monotonic() - self._read_at < self._cache_seconds:
            return self._presence
        async with self._lock:  # one read for every caller that came meanwhile
            if time.monotonic() - self._read_at >= self._cache_seconds:
                self._presence = await self._store.read_presence()
                self._read_at = time.monotonic()
        return self._presence

    async def explain(self, record: TaskRecord) -> Wait | None:
        """Why the task waits (no read at all for one that ended)."""
        if record.terminal:
            return None
        return explain(record, await self.presence(), int(time.time() * 1000))

    async def annotate(self, record: TaskRecord, state: common_pb2.TaskState) -> None:
        """Sets why the task waits on its state."""
        apply(await self.explain(record), state)
