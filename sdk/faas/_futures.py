"""``TaskFuture``: a ``concurrent.futures.Future`` bound to one task, fed by the client's watch
stream."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from faas.v1 import common_pb2

from ._models import TaskInfo, TaskStatus
from .errors import FaaSTimeout

__all__ = ["TaskFuture", "results_in_order"]

_RUNNING = common_pb2.TASK_STATUS_RUNNING


class TaskFuture(concurrent.futures.Future[Any]):
    """The future of one task, completed by the client from its WatchTasks stream.

    ``task_id`` names the task; ``info`` is the latest snapshot streamed (``None`` before the
    first). The future turns *running* when the task does. A future from ``submit()`` exists
    before its task does: the task is queued, with others submitted at about the same time,
    by one ExecuteBatch, and ``task_id`` waits for that answer (milliseconds) the first time it
    is read, raising the submission's error if it failed (the future then holds that error).
    ``cancel()`` succeeds only while the task is still queued and only stops the local wait:
    the platform has no cancel, so the task itself still runs (unless it was not sent yet:
    then it never is). Done-callbacks run on the client's I/O thread: keep them short and
    make no blocking client calls there.
    """

    def __init__(self, task_id: str | None = None) -> None:
        super().__init__()
        self._task_id = task_id
        self._submission_error: BaseException | None = None
        self._submitted = threading.Event()
        if task_id is not None:
            self._submitted.set()
        # The latest state streamed: as received (made a TaskInfo only when read), or as the
        # TaskInfo the client made of a terminal one. Set by the I/O thread only.
        self._snapshot: common_pb2.TaskState | TaskInfo | None = None

    @property
    def info(self) -> TaskInfo | None:
        """The latest snapshot of the task streamed (None before the first)."""
        snapshot = self._snapshot
        if isinstance(snapshot, common_pb2.TaskState):
            return TaskInfo.from_proto(snapshot)
        return snapshot

    @property
    def task_id(self) -> str:
        """The task's id, once the gateway has answered the submission (waits until then)."""
        if self._task_id is None:
            self._submitted.wait()
            if self._task_id is None:
                assert self._submission_error is not None
                raise self._submission_error
        return self._task_id

    @property
    def submitted(self) -> bool:
        """Whether the submission has been answered: the task exists, or it failed."""
        return self._submitted.is_set()

    @property
    def status(self) -> TaskStatus:
        """The task's status as last streamed (QUEUED until the first snapshot arrives)."""
        snapshot = self._snapshot
        if isinstance(snapshot, common_pb2.TaskState):
            return TaskStatus.from_proto(snapshot.status)
        return snapshot.status if snapshot is not None else TaskStatus.QUEUED

    def __repr__(self) -> str:
        name = self._task_id or "(being submitted)"
        return f"<TaskFuture {name} {self.status} done={self.done()}>"

    def _describe(self) -> str:
        """The words "task ID" for messages, without waiting for the id."""
        return f"task {self._task_id}" if self._task_id else "a task still being submitted"

    def _bind(self, task_id: str) -> None:
        """The gateway queued the task under ``task_id``."""
        self._task_id = task_id
        self._submitted.set()

    def _submission_failed(self, error: BaseException) -> None:
        """The task could not be queued: the future fails with ``error``."""
        self._submission_error = error
        self._submitted.set()
        self._resolve(error=error)

    def _update(self, state: common_pb2.TaskState | TaskInfo) -> None:
        """Records a streamed state (or the TaskInfo made of it); marks the future running
        when the task is."""
        self._snapshot = state
        running = state.status == (
            _RUNNING if isinstance(state, common_pb2.TaskState) else TaskStatus.RUNNING
        )
        if running and not (self.running() or self.done()):
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
                    f"{future._describe()} did not end within {timeout}s", reason="WAIT_TIMEOUT"
                ) from None
            pending.pop()
            yield value
    finally:
        for future in pending:
            future.cancel()
