"""The Celery app of the comparison: the same no-op and sleep tasks, Redis broker and backend.

The broker URL comes from ``BENCH_CELERY_REDIS_URL``, set by the suite for the worker it starts.
"""

from __future__ import annotations

import os
import time

from celery import Celery

_URL = os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("bench", broker=_URL, backend=_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue="bench",
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    return None


@app.task(name="bench.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
