"""What the CLI prints: JSON documents for scripts, short lines and tables for people."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import _serde
from .._models import TaskInfo, TaskStatus, WaitInfo, WorkersReport

__all__ = [
    "Outcome",
    "dumps",
    "outcome_of",
    "task_json",
    "task_line",
    "workers_json",
    "workers_table",
]


def dumps(document: Any) -> str:
    """One line of JSON."""
    return json.dumps(document, separators=(",", ":"), default=str)


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can hold it unchanged, else ``None``."""
    try:
        return value if json.loads(json.dumps(value)) == value else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A task's value (COMPLETED) or the one-line description of its failure."""

    info: TaskInfo
    value: Any = None
    failure: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.failure)


def outcome_of(info: TaskInfo) -> Outcome:
    """Reads an ended task's value; a failure becomes a one-line description."""
    if info.status == TaskStatus.FAILED:
        detail = info.message or info.cause
        return Outcome(info, failure=f"task {info.task_id} FAILED ({info.cause}): {detail}")
    return Outcome(info, value=_serde.outcome(info))


def task_json(info: TaskInfo, outcome: Outcome | None = None) -> dict[str, Any]:
    """The JSON document of a task; with its outcome once it has ended."""
    document: dict[str, Any] = {
        "task_id": info.task_id,
        "function_id": info.function_id,
        "status": str(info.status),
        "attempts": info.attempts,
        "worker_id": info.worker_id,
        "created_time": _stamp(info.created_time),
        "started_time": _stamp(info.started_time),
        "finished_time": _stamp(info.finished_time),
        "result": None,
        "result_repr": None,
        "error": None,
        "waiting": wait_json(info.waiting),
    }
    if outcome is not None and not outcome.failed:
        document["result"] = _jsonable(outcome.value)
        document["result_repr"] = repr(outcome.value)
    if info.status == TaskStatus.FAILED:
        document["error"] = {
            "cause": info.cause,
            "message": info.message,
            "traceback": info.traceback,
        }
    return document


def wait_json(waiting: WaitInfo | None) -> dict[str, Any] | None:
    """The ``waiting`` document of a task that has not ended (None once it has)."""
    if waiting is None:
        return None
    return {
        "reason": waiting.reason,
        "since": _stamp(waiting.since),
        "message": waiting.message,
        "worker_id": waiting.worker_id or None,
        "heartbeat_age_seconds": waiting.heartbeat_age,
    }


def wait_text(waiting: WaitInfo) -> str:
    """Why a task waits, for people: the reason, its sentence and since when."""
    since = ""
    if waiting.since is not None:
        seconds = max((datetime.now().astimezone() - waiting.since).total_seconds(), 0.0)
        since = f" (for {seconds:.0f}s)"
    return f"{waiting.reason}: {waiting.message}{since}"


def task_line(info: TaskInfo) -> str:
    """One line for ``faas watch``: time, status, attempt and worker, and why it waits."""
    when = datetime.now().astimezone().strftime("%H:%M:%S.%f")[:-3]
    where = f"  attempt {info.attempts} on {info.worker_id}" if info.worker_id else ""
    why = ""
    if info.waiting is not None and info.waiting.reason != "RUNNING":  # its status says that
        why = f"  {info.waiting.reason}: {info.waiting.message}"
    return f"{when}  {info.status:<9}{where}{why}"


def workers_json(report: WorkersReport) -> dict[str, Any]:
    return {
        "mode": report.mode,
        "queued": report.queued,
        "workers": [
            {
                "worker_id": w.worker_id,
                "host": w.host,
                "pid": w.pid,
                "capacity": w.capacity,
                "in_flight": w.in_flight,
                "load": round(w.load, 3),
                "assigned": w.assigned,
                "completed": w.completed,
                "failed": w.failed,
                "mode": w.mode,
                "draining": w.draining,
            }
            for w in report.workers
        ],
    }


_COLUMNS = ("WORKER", "HOST", "PID", "MODE", "PROCS", "IN FLIGHT", "LOAD", "DONE", "FAILED", "")


def workers_table(report: WorkersReport) -> str:
    """A table of the workers with a summary line above it."""
    rows = [
        (
            w.worker_id,
            w.host,
            str(w.pid),
            w.mode,
            str(w.capacity),
            str(w.in_flight),
            f"{w.load:.0%}",
            str(w.completed),
            str(w.failed),
            "draining" if w.draining else "",
        )
        for w in report.workers
    ]
    count = len(report.workers)
    summary = (
        f"{count} worker{'s' if count != 1 else ''} ({report.mode} mode), "
        f"{report.queued} task{'s' if report.queued != 1 else ''} queued"
    )
    if not rows:
        return summary
    widths = [max(len(row[i]) for row in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [_COLUMNS, *rows]
    ]
    return "\n".join([summary, *lines])
