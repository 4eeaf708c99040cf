"""``TaskFuture``: a ``concurrent.futures.Future`` bound to one task, fed by its watch stream."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ._models import TaskInfo, TaskStatus
from .errors import FaaSTimeout

__all__ = ["TaskFuture", "results_in_order"]


class TaskFuture(concurrent.futures.Future[Any]):
    """The future of one task, completed by the client when the task's watch stream ends.

    ``task_id`` names the task; ``info`` is the latest snapshot streamed (``None`` before the
    first). The future turns *running* when the task does. ``cancel()`` succeeds only while
    the task is still queued and only stops the local wait: the platform has no cancel, so
    the task itself still runs. Done-callbacks run on the client's I/O thread: keep them
    short and make no blocking client calls there.
    """

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.info: TaskInfo | None = None

    @property
    def status(self) -> TaskStatus:
        """The task's status as last streamed (QUEUED until the first snapshot arrives)."""
        return self.info.status if self.info is not None else TaskStatus.QUEUED

    def __repr__(self) -> str:
        return f"<TaskFuture {self.task_id} {self.status} done={self.done()}>"

    def _update(self, info: TaskInfo) -> None:
        """Records a streamed snapshot; marks the future running when the task is."""
        self.info = info
        if info.status == TaskStatus.RUNNING and not (self.running() or self.done()):
            self.set_running_or_notify_cancel()

    def _resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        """Sets the result or exception unless the future is already done (e.g. cancelled)."""
        if self.done():
            return
        try:
            if error is not None:
                self.set_exception(error)
            else:
                self.set_result(value)
        except concurrent.futures.InvalidStateError:  # cancelled meanwhile
            pass


def results_in_order(futures: Sequence[TaskFuture], timeout: float | None) -> Iterator[Any]:
    """Yields each future's result in order, as ``Executor.map`` does; the whole iteration is
    bounded by ``timeout`` seconds. Futures not yet consumed are cancelled if it stops early."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = list(reversed(futures))
    try:
        while pending:
            future = pending[-1]
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                value = future.result(left)
            except concurrent.futures.TimeoutError:
                if future.done():  # the task's own exception was a TimeoutError
                    raise
                raise FaaSTimeout(
                    f"task {future.task_id} did not end within {timeout}s", reason="WAIT_TIMEOUT"
                ) from None
            pending.pop()
            yield value
    finally:
        for future in pending:
            future.cancel()
