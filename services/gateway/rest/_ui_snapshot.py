"""The dashboard's snapshot: what ``/ui/events`` sends each second, built from gateway answers.

Pure: the gateway calls are made by ``_ui_hub``; here their answers (or why one is missing)
become one JSON-ready dict, with every age computed against the shim's clock (``now``, seconds
since the epoch), so the page does not depend on the browser's clock. The throughput comes from
the workers' completed and failed counters: what they added between two snapshots finished in
between.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from faas.v1 import common_pb2, gateway_pb2
from google.protobuf import duration_pb2, timestamp_pb2

from services.gateway.rest._convert import cause_name, status_name

__all__ = [
    "BUCKETS",
    "BUCKET_SECONDS",
    "Parts",
    "Throughput",
    "build_snapshot",
    "function_row",
    "queue_info",
    "task_row",
    "worker_row",
]

BUCKET_SECONDS: Final = 5
"""The throughput chart's bar width, in seconds."""
BUCKETS: Final = 60
"""How many bars the chart has: the last five minutes."""

_WAIT_PREFIX: Final = "WAIT_REASON_"


def _seconds(stamp: timestamp_pb2.Timestamp) -> float | None:
    """A Timestamp as seconds since the epoch; None when unset (all zero)."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.seconds + stamp.nanos / 1e9


def _length(value: duration_pb2.Duration) -> float:
    return value.seconds + value.nanos / 1e9


def _between(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 3)


def _wait_name(reason: int) -> str:
    try:
        name = common_pb2.WaitReason.Name(reason)  # type: ignore[arg-type]
    except ValueError:
        return ""
    short = name.removeprefix(_WAIT_PREFIX)
    return "" if short == "UNSPECIFIED" else short


def worker_row(worker: common_pb2.WorkerStats, now: float) -> dict[str, Any]:
    """One worker: its load and how long ago it was last heard from (None: not reported)."""
    connected = _seconds(worker.connected_time)
    heartbeat = _length(worker.heartbeat_age) if worker.HasField("heartbeat_age") else None
    return {
        "worker_id": worker.worker_id,
        "host": worker.host,
        "pid": worker.pid,
        "mode": worker.mode,
        "capacity": worker.capacity,
        "in_flight": worker.in_flight,
        "completed": worker.completed,
        "failed": worker.failed,
        "draining": worker.draining,
        "heartbeat_age": None if heartbeat is None else round(heartbeat, 3),
        "connected_age": _between(connected, now),
        "python": worker.runtime.python_version,
        "labels": dict(worker.labels),
    }


def task_row(task: common_pb2.TaskState, now: float, names: dict[str, str]) -> dict[str, Any]:
    """One task: status, how long it queued and ran (so far, while it has not ended), and why it
    failed or is waiting. The traceback is not here: the page reads it from ``/result``."""
    created = _seconds(task.created_time)
    started = _seconds(task.started_time)
    finished = _seconds(task.finished_time)
    failed = task.status == common_pb2.TASK_STATUS_FAILED
    running_until = finished if finished is not None else now
    return {
        "task_id": task.task_id,
        "function_id": task.function_id,
        "function": names.get(task.function_id, ""),
        "status": status_name(task.status),
        "attempts": task.attempts,
        "worker_id": task.worker_id,
        "age": _between(created, now),
        "queue_wait": _between(created, started if started is not None else finished or now),
        "run_time": _between(started, running_until) if started is not None else None,
        "total": _between(created, finished),
        "cause": cause_name(task.error.cause) if failed else "",
        "message": task.error.message if failed else "",
        "wait_reason": _wait_name(task.wait_reason),
        "wait_message": task.wait_message or task.pending_reason,
        "wait_for": _between(_seconds(task.wait_since), now),
    }


def function_row(function: common_pb2.FunctionInfo, now: float) -> dict[str, Any]:
    """One function and its tasks' counts (in progress: submitted and not ended yet)."""
    counts = function.counts
    ended = counts.completed + counts.failed
    return {
        "function_id": function.function_id,
        "name": function.name,
        "age": _between(_seconds(function.created_time), now),
        "submitted": counts.submitted,
        "completed": counts.completed,
        "failed": counts.failed,
        "in_progress": max(0, counts.submitted - ended),
    }


def queue_info(
    depth: int, queued: gateway_pb2.ListTasksResponse | None, now: float
) -> dict[str, Any]:
    """The queue depth and the age of its oldest task.

    ``queued`` is one page of QUEUED tasks, newest first: on the last page (no next token) its
    oldest task is the queue's oldest (``oldest_exact``); otherwise older ones exist, and its
    oldest's age is a lower bound. None: the gateway cannot list tasks (depth only).
    """
    oldest: float | None = None
    exact = False
    if queued is not None and queued.tasks:
        created = [s for t in queued.tasks if (s := _seconds(t.created_time)) is not None]
        if created:
            oldest = _between(min(created), now)
            exact = not queued.next_page_token
    elif queued is not None and not queued.next_page_token:
        exact = True  # nothing queued of the caller's
    return {"depth": depth, "oldest_age": oldest, "oldest_exact": exact}


@dataclass
class Throughput:
    """Tasks finished per second, in ``BUCKET_SECONDS`` bars over the last ``BUCKETS`` bars.

    Fed the workers of each snapshot (``observe``): what a known worker's completed + failed
    counters grew by finished since the last look; a worker first seen counts only what it
    finished after it connected, if it connected since the last look (otherwise its counters
    are the baseline). A counter that went down (a worker reconnected under the same id) is a
    new baseline.
    """

    buckets: int = BUCKETS
    width: int = BUCKET_SECONDS
    _last: dict[str, int] = field(default_factory=dict)
    _seen: float | None = None
    _bars: deque[tuple[int, int]] = field(default_factory=deque)  # (bar start, finished)

    def observe(self, workers: list[common_pb2.WorkerStats], now: float) -> None:
        """Adds what finished since the previous call."""
        finished = 0
        current: dict[str, int] = {}
        for worker in workers:
            done = worker.completed + worker.failed
            current[worker.worker_id] = done
            before = self._last.get(worker.worker_id)
            if before is not None:
                finished += max(0, done - before)
            elif self._seen is not None:
                connected = _seconds(worker.connected_time)
                if connected is not None and connected >= self._seen:
                    finished += done
        self._last = current
        self._seen = now
        self._add(now, finished)

    def _add(self, now: float, finished: int) -> None:
        start = int(now // self.width) * self.width
        if self._bars and self._bars[-1][0] == start:
            self._bars[-1] = (start, self._bars[-1][1] + finished)
        else:
            self._bars.append((start, finished))
        while self._bars and self._bars[0][0] <= start - self.buckets * self.width:
            self._bars.popleft()

    def series(self, now: float) -> dict[str, Any]:
        """The bars, oldest first, as tasks per second (0 where nothing was seen), and the
        tasks finished in the last minute."""
        end = int(now // self.width) * self.width
        first = end - (self.buckets - 1) * self.width
        counts = dict(self._bars)
        rates = [
            round(counts.get(first + i * self.width, 0) / self.width, 3)
            for i in range(self.buckets)
        ]
        minute = sum(n for start, n in self._bars if start > end - 60)
        return {
            "bucket_seconds": self.width,
            "end": end + self.width,
            "rates": rates,
            "last_minute": minute,
            "since": self._first_seen,
        }

    @property
    def _first_seen(self) -> int | None:
        return self._bars[0][0] if self._bars else None


@dataclass
class Parts:
    """The gateway answers one snapshot is made of; None where a call failed or is not built,
    with the reason in ``missing`` (part name -> sentence)."""

    workers: gateway_pb2.ListWorkersResponse | None = None
    tasks: gateway_pb2.ListTasksResponse | None = None
    queued: gateway_pb2.ListTasksResponse | None = None
    functions: gateway_pb2.ListFunctionsResponse | None = None
    missing: dict[str, str] = field(default_factory=dict)


def build_snapshot(parts: Parts, now: float, throughput: Throughput) -> dict[str, Any]:
    """The snapshot the page draws: workers, queue, recent tasks, functions, throughput."""
    workers = list(parts.workers.workers) if parts.workers is not None else []
    if parts.workers is not None:
        throughput.observe(workers, now)
    functions = list(parts.functions.functions) if parts.functions is not None else []
    names = {f.function_id: f.name for f in functions}
    depth = parts.workers.queued if parts.workers is not None else 0
    return {
        "now": round(now, 3),
        "mode": parts.workers.mode if parts.workers is not None else "",
        "queue": queue_info(depth, parts.queued, now),
        "workers": [worker_row(w, now) for w in workers] if parts.workers is not None else None,
        "tasks": (
            [task_row(t, now, names) for t in parts.tasks.tasks]
            if parts.tasks is not None
            else None
        ),
        "functions": (
            [function_row(f, now) for f in functions] if parts.functions is not None else None
        ),
        "throughput": throughput.series(now),
        "missing": dict(parts.missing),
    }
