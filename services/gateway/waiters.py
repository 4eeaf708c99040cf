"""Wake-ups for callers waiting on a task's status, fed by the dispatcher's events."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Protocol

from faas.v1 import common_pb2

State = common_pb2.TaskState


class Watcher(Protocol):
    """Follows many tasks at once (one WatchTasks stream), called back on their events."""

    def changed(self, task_id: str, state: State | None, terminal: bool = True) -> None:
        """A task it subscribed to changed; ``state`` is the event's (terminal) state, if any,
        and ``terminal`` whether the event said the task ended."""

    def stale(self) -> None:
        """Events may have been missed (the link was down, or the gateway is stopping)."""


class TaskWaiters:
    """Futures keyed by task id, resolved when the dispatcher reports a change of that task, and
    the watchers subscribed to tasks.

    A future resolves to the state the event carried (a terminal event carries the state as
    stored, written to Redis before the event was sent), or to None when the event carried none
    and the waiter must read the store. A waiter registered with ``terminal_only`` (a long poll
    for a result) sleeps through the RUNNING event and wakes only when the task ends.
    """

    def __init__(self) -> None:
        self._waiters: defaultdict[str, dict[asyncio.Future[State | None], bool]] = defaultdict(
            dict
        )
        self._subscribed: dict[str, set[Watcher]] = {}
        self._watchers: set[Watcher] = set()

    def register(
        self, task_id: str, *, terminal_only: bool = False
    ) -> asyncio.Future[State | None]:
        """A future resolved at the task's next event; register before reading the store."""
        future: asyncio.Future[State | None] = asyncio.get_running_loop().create_future()
        self._waiters[task_id][future] = terminal_only
        return future

    def discard(self, task_id: str, future: asyncio.Future[State | None]) -> None:
        waiters = self._waiters.get(task_id)
        if waiters is not None:
            waiters.pop(future, None)
            if not waiters:
                del self._waiters[task_id]

    def subscribe(self, task_id: str, watcher: Watcher) -> None:
        """Calls ``watcher.changed`` at each event of the task until ``unsubscribe``."""
        self._watchers.add(watcher)
        self._subscribed.setdefault(task_id, set()).add(watcher)

    def unsubscribe(self, task_id: str, watcher: Watcher) -> None:
        watchers = self._subscribed.get(task_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._subscribed[task_id]

    def remove_watcher(self, watcher: Watcher, task_ids: list[str]) -> None:
        """Forgets ``watcher`` and its subscriptions to ``task_ids``."""
        for task_id in task_ids:
            self.unsubscribe(task_id, watcher)
        self._watchers.discard(watcher)

    def notify(self, task_id: str, *, terminal: bool = True, state: State | None = None) -> None:
        """An event of the task; ``state`` is what a terminal event carried (None: read Redis)."""
        watchers = self._subscribed.get(task_id)
        if watchers:
            for watcher in list(watchers):
                watcher.changed(task_id, state, terminal)
        self._wake(task_id, terminal, state)

    def _wake(self, task_id: str, terminal: bool, state: State | None) -> None:
        waiters = self._waiters.get(task_id)
        if not waiters:
            return
        for future, terminal_only in list(waiters.items()):
            if terminal or not terminal_only:
                del waiters[future]
                if not future.done():
                    future.set_result(state)
        if not waiters:
            del self._waiters[task_id]

    def notify_all(self) -> None:
        """Wakes everyone, e.g. after the event stream was down and events may have been missed."""
        for task_id in list(self._waiters):
            self._wake(task_id, True, None)
        for watcher in list(self._watchers):
            watcher.stale()

    def __len__(self) -> int:
        return len(self._waiters)
