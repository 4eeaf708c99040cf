"""Status changes sent to the linked gateways: batched per loop turn, split into bounded messages.

A terminal event carries the task's state as the dispatcher stored it (Redis is written first),
so a gateway answers its waiters from the event without reading Redis again.
"""

from __future__ import annotations

import asyncio

from faas.v1 import common_pb2, dispatcher_pb2

from services.common.store import TaskRecord, task_state
from services.common.streams import split

__all__ = ["GatewayEvents", "GatewayOutbox"]

GatewayOutbox = asyncio.Queue[dispatcher_pb2.LinkResponse | None]


class GatewayEvents:
    """The gateways' outboxes, and the events of this loop turn that are not sent yet."""

    def __init__(self) -> None:
        self._gateways: set[GatewayOutbox] = set()
        self._events: list[dispatcher_pb2.TaskEvent] = []
        self._scheduled = False

    def add(self, outbox: GatewayOutbox) -> None:
        self._gateways.add(outbox)

    def remove(self, outbox: GatewayOutbox) -> None:
        self._gateways.discard(outbox)

    def emit(
        self,
        task_id: str,
        status: common_pb2.TaskStatus.ValueType,
        state: common_pb2.TaskState | None = None,
    ) -> None:
        if not self._gateways:
            return
        self._events.append(dispatcher_pb2.TaskEvent(task_id=task_id, status=status, state=state))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def emit_state(self, record: TaskRecord) -> None:
        """A terminal event with the state as stored."""
        if self._gateways:
            state = task_state(record)
            self.emit(record.task_id, state.status, state)

    def _flush(self) -> None:
        self._scheduled = False
        events, self._events = self._events, []
        for batch in split(dispatcher_pb2.TaskEventBatch(events=events)):
            message = dispatcher_pb2.LinkResponse(events=batch)
            for outbox in self._gateways:
                outbox.put_nowait(message)
