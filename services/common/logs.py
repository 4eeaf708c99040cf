"""Logging set-up shared by the services: plain text or JSON lines, with context ids."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

task_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("task_id", default="")
worker_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("worker_id", default="")


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.task_id = task_id_var.get()
        record.worker_id = worker_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in ("task_id", "worker_id"):
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
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
