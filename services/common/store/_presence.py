"""What the dispatcher reports of itself and its workers, for gateways to say why tasks wait.

The dispatcher writes both keys every report period, in one MULTI; the heartbeats hash is
replaced whole, so it only ever names the workers connected at the last report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from ._store import TaskStore, _translated

__all__ = ["Presence", "publish_presence", "read_presence"]


@dataclass(frozen=True, slots=True)
class Presence:
    """The dispatcher's last report: when (ms, 0: never), its period, its workers' slots, and
    each connected worker's last heartbeat (ms)."""

    updated_ms: int = 0
    interval_ms: int = 1000
    workers: int = 0
    slots: int = 0
    free: int = 0
    heartbeats: Mapping[str, int] = field(default_factory=dict)


@_translated
async def publish_presence(store: TaskStore, presence: Presence) -> None:
    """Writes ``presence`` (both keys at once)."""
    keys = store.keys
    fields: dict[Any, Any] = {
        "updated": presence.updated_ms,
        "interval": presence.interval_ms,
        "workers": presence.workers,
        "slots": presence.slots,
        "free": presence.free,
    }
    async with store.client.pipeline(transaction=True) as pipe:
        pipe.hset(keys.dispatcher, mapping=fields)
        pipe.delete(keys.heartbeats)
        if presence.heartbeats:
            beats: dict[Any, Any] = dict(presence.heartbeats)
            pipe.hset(keys.heartbeats, mapping=beats)
        await pipe.execute()


@_translated
async def read_presence(store: TaskStore) -> Presence:
    """The dispatcher's last report (``updated_ms`` 0 when there is none)."""
    async with store.client.pipeline(transaction=False) as pipe:
        pipe.hgetall(store.keys.dispatcher)
        pipe.hgetall(store.keys.heartbeats)
        raw, beats = await pipe.execute()
    fields = {k.decode(): int(v) for k, v in cast("dict[bytes, bytes]", raw).items()}
    return Presence(
        updated_ms=fields.get("updated", 0),
        interval_ms=fields.get("interval", 1000) or 1000,
        workers=fields.get("workers", 0),
        slots=fields.get("slots", 0),
        free=fields.get("free", 0),
        heartbeats={k.decode(): int(v) for k, v in cast("dict[bytes, bytes]", beats).items()},
    )
