"""Redis commands per task, from the server's INFO commandstats before and after a run."""

from __future__ import annotations

from typing import Any

import redis


def commandstats(url: str) -> dict[str, dict[str, float]]:
    """Per command: calls and total microseconds, as Redis counts them."""
    client = redis.Redis.from_url(url, socket_timeout=5.0)
    try:
        info: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    return {
        name.removeprefix("cmdstat_"): {"calls": float(v["calls"]), "usec": float(v["usec"])}
        for name, v in info.items()
    }


def per_task(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], tasks: int
) -> dict[str, dict[str, float]]:
    """Calls per task and server microseconds per task of each command used during the run."""
    out = {}
    for name, stats in after.items():
        calls = stats["calls"] - before.get(name, {}).get("calls", 0.0)
        usec = stats["usec"] - before.get(name, {}).get("usec", 0.0)
        if calls > 0 and tasks > 0 and name not in ("info",):
            out[name] = {"calls_per_task": calls / tasks, "server_us_per_task": usec / tasks}
    return out
