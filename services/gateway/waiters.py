"""Wake-ups for callers waiting on a task's status, fed by the dispatcher's events."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class TaskWaiters:
    """Futures keyed by task id, resolved when the dispatcher reports a change of that task.

    A waiter registered with ``terminal_only`` (a long poll for a result) sleeps through the
    RUNNING event and wakes only when the task ends.
    """

    def __init__(self) -> None:
        self._waiters: defaultdict[str, dict[asyncio.Future[None], bool]] = defaultdict(dict)

    def register(self, task_id: str, *, terminal_only: bool = False) -> asyncio.Future[None]:
        """A future resolved at the task's next event; register before reading the store."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[task_id][future] = terminal_only
        return future

    def discard(self, task_id: str, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(task_id)
        if waiters is not None:
            waiters.pop(future, None)
            if not waiters:
                del self._waiters[task_id]

    def notify(self, task_id: str, *, terminal: bool = True) -> None:
        waiters = self._waiters.get(task_id)
        if not waiters:
            return
        for future, terminal_only in list(waiters.items()):
            if terminal or not terminal_only:
                del waiters[future]
                if not future.done():
                    future.set_result(None)
        if not waiters:
            del self._waiters[task_id]

    def notify_all(self) -> None:
        """Wakes everyone, e.g. after the event stream was down and events may have been missed."""
        for task_id in list(self._waiters):
            self.notify(task_id)

    def __len__(self) -> int:
        return len(self._waiters)
