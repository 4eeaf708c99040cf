"""The parent's view of one pool child: process, pipe, current job and loaded functions."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from multiprocessing.context import ForkContext, ForkServerContext, SpawnContext
from typing import TYPE_CHECKING, Any

from ._child import child_main
from ._types import Job

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

Context = SpawnContext | ForkContext | ForkServerContext


class ChildHandle:
    """One child process and the bookkeeping the pool keeps about it.

    A handle is created, started once and retired once; a retired child is never reused.
    """

    def __init__(self, context: Context, name: str) -> None:
        self.name = name
        self.conn, child_end = context.Pipe(duplex=True)
        self._child_end: Connection[Any, Any] = child_end
        self.process = context.Process(target=child_main, args=(child_end,), name=name)
        self.started = False
        self.ready = False
        self.retired = False
        self.reading_off_loop = False
        self.job: Job | None = None
        self.timer: asyncio.TimerHandle | None = None
        # Set only for children launched by ProcessPool.start(), which awaits them.
        self.ready_waiter: asyncio.Future[None] | None = None
        self._functions: OrderedDict[str, None] = OrderedDict()
        self._transfers: set[asyncio.Future[Any]] = set()

    def start(self) -> None:
        """Start the process and drop the parent's copy of the child's end of the pipe."""
        try:
            self.process.start()
            self.started = True
        finally:
            # Once only the child holds its end, the parent reads EOF as soon as the child dies.
            self._child_end.close()

    @property
    def idle(self) -> bool:
        """Whether the child is ready and has no job."""
        return self.ready and not self.retired and self.job is None

    @property
    def fileno(self) -> int:
        """The parent's end of the pipe, for ``loop.add_reader``."""
        return self.conn.fileno()

    def has_function(self, function_id: str) -> bool:
        """Whether the child already holds ``function_id``."""
        return function_id in self._functions

    def remember_function(self, function_id: str, capacity: int) -> tuple[str, ...]:
        """Record that the child now holds ``function_id``; return the ids it must drop."""
        self._functions[function_id] = None
        self._functions.move_to_end(function_id)
        evicted: list[str] = []
        while len(self._functions) > capacity:
            evicted.append(self._functions.popitem(last=False)[0])
        return tuple(evicted)

    def forget_function(self, function_id: str) -> None:
        """Record that the child does not hold ``function_id`` (it failed to load)."""
        self._functions.pop(function_id, None)

    def track(self, transfer: asyncio.Future[Any]) -> None:
        """Keep an executor transfer on this pipe until it ends, so close() can wait for it."""
        self._transfers.add(transfer)
        transfer.add_done_callback(self._transfers.discard)

    def cancel_timer(self) -> None:
        """Cancel the running job's time limit, if any."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def kill(self) -> None:
        """Send SIGKILL unless the process never started or was already reaped."""
        if self.started and self.process.exitcode is None:
            self.process.kill()

    async def reap(self) -> int | None:
        """Wait (off the loop) for the process to exit, release its resources, return its code."""
        if not self.started:
            self.conn.close()
            return None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.process.join)
        # The process is gone, so executor transfers on its pipe end with EOF or EPIPE.
        if self._transfers:
            await asyncio.gather(*self._transfers, return_exceptions=True)
        exitcode = self.process.exitcode
        self.conn.close()
        with contextlib.suppress(ValueError):  # Only if someone else reaped it behind our back.
            self.process.close()
        return exitcode
