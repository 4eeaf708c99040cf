"""Wake-ups for callers waiting on a task's status, fed by the dispatcher's events."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class TaskWaiters:
    """Futures keyed by task id, resolved when the dispatcher reports a change of that task."""

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Future[None]]] = defaultdict(set)

    def register(self, task_id: str) -> asyncio.Future[None]:
        """A future resolved at the task's next event; register before reading the store."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[task_id].add(future)
        return future

    def discard(self, task_id: str, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(task_id)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[task_id]

    def notify(self, task_id: str) -> None:
        for future in self._waiters.pop(task_id, ()):
            if not future.done():
                future.set_result(None)

    def notify_all(self) -> None:
        """Wakes everyone, e.g. after the event stream was down and events may have been missed."""
        for task_id in list(self._waiters):
            self.notify(task_id)

    def __len__(self) -> int:
        return len(self._waiters)
