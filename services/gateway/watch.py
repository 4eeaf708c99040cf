"""One WatchTasks stream: many tasks followed at once, their changes sent in bounded batches.

The stream subscribes to each task's events (``TaskWaiters.subscribe``) and keeps, per task, the
status it last sent. Whatever changed since the last response (a terminal event's state, or a
task to read from Redis) is gathered while a response is being built and sent, so a busy stream
sends few large responses and an idle one answers each event at once. As the waiters do, it
re-reads from Redis every task it has heard nothing of for ``recheck_seconds``, in case an event
was missed.

A RUNNING event carries no state, so sending it costs a Redis read. The stream reads it only
once ``RUNNING_DEBOUNCE_SECONDS`` have passed without the task ending: a short task's terminal
state (carried by its event) then supersedes it, and the stream sends one state per task
instead of a read and two states. A long task's RUNNING arrives that much later.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from faas.v1 import common_pb2, gateway_pb2

from services.common.errors import InvalidArgument, Unavailable
from services.common.store import TaskRecord, TaskStore
from services.common.streams import split

from .convert import task_state
from .limits import MAX_ID_CHARS
from .waiters import State, TaskWaiters

__all__ = ["MAX_WATCHED_TASKS", "TaskWatch"]

MAX_WATCHED_TASKS = 1_000_000
"""The most tasks one stream follows at once (past it: INVALID_ARGUMENT)."""

_READ_CHUNK = 1000  # task ids per pipelined Redis read
_TERMINAL = frozenset({common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED})
_NOT_SENT = common_pb2.TASK_STATUS_UNSPECIFIED

RUNNING_DEBOUNCE_SECONDS = 0.05
"""How long a RUNNING event waits for the task's terminal one before the stream reads it."""


class TaskWatch:
    """The tasks of one WatchTasks stream and what is still to be sent for them.

    ``add`` takes the ids of each request; ``responses`` yields the stream's responses until the
    requests have ended and every watched task has sent its terminal state. ``interval()`` is
    how long to trust events alone; ``closing()`` ends the stream as UNAVAILABLE.
    """

    def __init__(
        self,
        store: TaskStore,
        waiters: TaskWaiters,
        interval: Callable[[], float],
        closing: Callable[[], bool],
        *,
        tenant: str | None = None,
        annotate: Callable[[TaskRecord, common_pb2.TaskState], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._annotate = annotate  # sets why a task read from Redis waits
        # Whose tasks the stream may see (None: every tenant's); another tenant's task answers
        # as an unknown id. An event is trusted for a task only once a read showed it is
        # the tenant's (``_owned``).
        self._tenant = tenant
        self._owned: set[str] = set()
        self._waiters = waiters
        self._interval = interval
        self._closing = closing
        self._sent: dict[str, common_pb2.TaskStatus.ValueType] = {}  # watched -> last sent
        self._heard: OrderedDict[str, float] = OrderedDict()  # watched, oldest news first
        self._dirty: dict[str, State | None] = {}  # to send: the event's state, or None: read
        # Tasks whose RUNNING event came, by when to read them unless they end first.
        self._deferred: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._requests_done = False
        self._failure: BaseException | None = None

    # --- fed by the request stream and the dispatcher's events ------------------------------

    def add(self, task_ids: Iterable[str]) -> None:
        """Starts watching ``task_ids`` (an id already watched is ignored)."""
        for task_id in task_ids:
            if not task_id or len(task_id) > MAX_ID_CHARS:
                raise InvalidArgument(
                    f"task_ids has an empty id or one over {MAX_ID_CHARS} characters",
                    "INVALID_ID",
                )
            if task_id in self._sent:
                continue
            if len(self._sent) >= MAX_WATCHED_TASKS:
                raise InvalidArgument(
                    f"a stream watches at most {MAX_WATCHED_TASKS} tasks at once",
                    "TOO_MANY_WATCHED_TASKS",
                )
            self._sent[task_id] = _NOT_SENT
            self._heard[task_id] = time.monotonic()
            self._waiters.subscribe(task_id, self)  # before the read: no event is lost
            self._dirty.setdefault(task_id, None)
        self._wake.set()

    def end_requests(self, failure: BaseException | None = None) -> None:
        """The request stream ended (cleanly, or with ``failure``, which ends the stream)."""
        self._requests_done = True
        if failure is not None and self._failure is None:
            self._failure = failure
        self._wake.set()

    def changed(self, task_id: str, state: State | None, terminal: bool = True) -> None:
        if self._tenant is not None and task_id not in self._owned:
            state = None  # not read yet: whose it is is not known, so its state is not sent
        if not terminal and state is None:
            if task_id not in self._dirty:  # a read already due covers it
                self._deferred.setdefault(task_id, time.monotonic() + RUNNING_DEBOUNCE_SECONDS)
                if len(self._deferred) == 1:
                    self._wake.set()  # the sleep's timeout now ends at its due time
            return
        self._deferred.pop(task_id, None)
        if state is not None or task_id not in self._dirty:
            self._dirty[task_id] = state
        self._wake.set()

    def stale(self) -> None:
        for task_id in self._sent:
            self._dirty.setdefault(task_id, None)
        self._wake.set()

    def close(self) -> None:
        """Drops every subscription (the stream ended, however)."""
        self._waiters.remove_watcher(self, list(self._sent))
        self._sent.clear()
        self._owned.clear()
        self._heard.clear()
        self._dirty.clear()
        self._deferred.clear()

    # --- the response stream -----------------------------------------------------------------

    async def responses(self) -> AsyncIterator[gateway_pb2.WatchTasksResponse]:
        """Responses until the requests ended and nothing is watched; raises a request's error,
        Unavailable when the gateway stops, and the store's errors."""
        while True:
            if self._failure is not None:
                raise self._failure
            if self._closing():
                raise Unavailable("the gateway is shutting down", "GATEWAY_SHUTTING_DOWN")
            if self._dirty:
                for response in await self._changes():
                    yield response
                continue
            if self._requests_done and not self._sent:
                return
            self._wake.clear()
            timeout = self._due_in()
            if timeout is None or timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._recheck_due()
            self._deferred_due()

    def _due_in(self) -> float | None:
        """Seconds until the next read is due: of the task heard of longest ago, or of the
        oldest deferred RUNNING event (None: none watched)."""
        now = time.monotonic()
        due: float | None = None
        for heard in self._heard.values():
            due = heard + self._interval() - now
            break
        for deferred in self._deferred.values():
            due = deferred - now if due is None else min(due, deferred - now)
            break
        return due

    def _deferred_due(self) -> None:
        """Marks for a read the RUNNING events that waited long enough for the task to end."""
        if not self._deferred:
            return
        now = time.monotonic()
        for task_id, due in list(self._deferred.items()):  # in arrival order, so due order
            if due > now:
                break
            del self._deferred[task_id]
            if task_id in self._sent:
                self._dirty.setdefault(task_id, None)

    def _recheck_due(self) -> None:
        """Marks for a Redis read every task not heard of for ``interval()`` seconds."""
        limit = time.monotonic() - self._interval()
        for task_id, heard in self._heard.items():
            if heard > limit:
                break
            self._dirty.setdefault(task_id, None)

    async def _changes(self) -> list[gateway_pb2.WatchTasksResponse]:
        """What changed since the last call, read where no event carried it, as responses."""
        dirty, self._dirty = self._dirty, {}
        unread = [task_id for task_id, state in dirty.items() if state is None]
        read: dict[str, State | None] = {}
        for start in range(0, len(unread), _READ_CHUNK):
            chunk = unread[start : start + _READ_CHUNK]
            if self._tenant is None:
                records = await self._store.get_tasks(chunk)
            else:
                records = await self._store.get_tasks(chunk, self._tenant)
            for task_id, record in zip(chunk, records, strict=True):
                if record is None:
                    read[task_id] = None
                    continue
                fresh = read[task_id] = task_state(record)
                self._owned.add(task_id)
                if self._annotate is not None:
                    await self._annotate(record, fresh)
        now = time.monotonic()
        states: list[State] = []
        unknown: list[str] = []
        for task_id, carried in dirty.items():
            if task_id not in self._sent:
                continue  # ended meanwhile
            state = carried if carried is not None else read[task_id]
            if state is None:
                unknown.append(task_id)
                self._forget(task_id)
                continue
            self._heard[task_id] = now
            self._heard.move_to_end(task_id)
            if state.status == self._sent[task_id]:
                continue
            states.append(state)
            if state.status in _TERMINAL:
                self._forget(task_id)
            else:
                self._sent[task_id] = state.status
        if not states and not unknown:
            return []
        return split(gateway_pb2.WatchTasksResponse(tasks=states, unknown_task_ids=unknown))

    def _forget(self, task_id: str) -> None:
        self._owned.discard(task_id)
        self._deferred.pop(task_id, None)
        del self._sent[task_id]
        del self._heard[task_id]
        self._waiters.unsubscribe(task_id, self)
