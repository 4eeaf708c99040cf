"""Logging set-up shared by the services: plain text or JSON lines, with context ids.

Every line names its service; a line about one task or worker carries ``task_id`` and
``worker_id``: from ``extra=ids(task_id=..., worker_id=...)`` where the line is logged, else from
the context variables :data:`task_id_var` and :data:`worker_id_var` (a worker process sets its
own id once; code handling one task may set the task's).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "ids", "setup_logging", "task_id_var", "worker_id_var"]

task_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("task_id", default="")
worker_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("worker_id", default="")

_IDS = ("task_id", "worker_id", "attempt_id")


def ids(task_id: str = "", worker_id: str = "", attempt_id: str = "") -> dict[str, str]:
    """The ``extra=`` of a log line about one task, attempt or worker (empty ones left out)."""
    given = {"task_id": task_id, "worker_id": worker_id, "attempt_id": attempt_id}
    return {name: value for name, value in given.items() if value}


class _ContextFilter(logging.Filter):
    """Fills in the ids a line was not given from the context variables."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "task_id", ""):
            record.task_id = task_id_var.get()
        if not getattr(record, "worker_id", ""):
            record.worker_id = worker_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: time, level, service, logger, message, and
    the task, attempt and worker ids a line has."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in _IDS:
            value = getattr(record, name, "")
            if value:
                data[name] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)


def setup_logging(service: str, level: str = "INFO", json_format: bool = False) -> None:
    """Configures the root logger for one service process (call once, at the entry point)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    if json_format:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
