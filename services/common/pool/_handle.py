"""The parent's view of one pool child: process, pipes, jobs held and loaded functions."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import socket
from collections import OrderedDict
from multiprocessing.context import ForkContext, ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from . import _protocol as proto
from ._child import child_main
from ._frames import FrameReader
from ._output import MarkedOutputCapture, OutputCapture
from ._spawn import ScrubbedProcess
from ._types import Job

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

Context = SpawnContext | ForkContext | ForkServerContext


class ChildHandle:
    """One child process and the bookkeeping the pool keeps about it.

    A handle is created, started once and retired once; a retired child is never reused. The
    child leads its own process group, and ``kill`` kills the whole group: the child and what
    its user code started. Its exit is watched through a pidfd (``exit_fd``), not through the
    pipe or multiprocessing's sentinel, which a process forked by user code holds open.

    ``jobs`` are the jobs given to the child and not yet reported, in the order it runs them:
    the first is running (it started when it was sent to an idle child, or when the job before
    it was reported), the others wait in the child or in ``unsent``.
    """

    def __init__(
        self, context: Context, name: str, config: proto.ChildConfig, max_output_bytes: int
    ) -> None:
        self.name = name
        self.depth = config.queue_depth
        self.conn, child_end = context.Pipe(duplex=True)
        output_end, output_child_end = context.Pipe(duplex=False)
        child_ends: list[Connection[Any, Any]] = [child_end, output_child_end]
        self.output: OutputCapture | MarkedOutputCapture
        self.doorbell: Connection[Any, Any] | None = None
        doorbell_child_end: Connection[Any, Any] | None = None
        if self.depth > 1:
            self.output = MarkedOutputCapture(output_end, max_output_bytes, config.output_marker)
            self.doorbell, doorbell_child_end = context.Pipe(duplex=False)
            os.set_blocking(self.doorbell.fileno(), False)
            child_ends.append(doorbell_child_end)
        else:
            self.output = OutputCapture(output_end, max_output_bytes)
        self._child_ends = tuple(child_ends)
        # Queued jobs: frames are read in bulk when the doorbell rings.
        self.frames = FrameReader(self.conn) if self.depth > 1 else None
        args = (child_end, output_child_end, config, doorbell_child_end)
        self.process: BaseProcess
        if isinstance(context, SpawnContext) and config.environment is not None:
            # Exec'd with its own environment: no platform secret in /proc/<pid>/environ.
            self.process = ScrubbedProcess(
                target=child_main, args=args, name=name, env=config.environment
            )
        else:
            self.process = context.Process(target=child_main, args=args, name=name)
        self.pid: int | None = None
        self._pidfd: int | None = None
        self._reaped = False
        self.started = False
        self.ready = False
        self.retired = False
        self.reading_off_loop = False
        self.jobs: collections.deque[Job] = collections.deque()
        self.unsent: list[tuple[proto.Request, int]] = []  # (request, size) for the next frame
        self.sending = False  # a frame is being written on an executor thread
        # Bytes of the requests of waiting jobs (all but the running one), which the child may
        # not have read: a frame sent to a busy child must fit in the pipe with them.
        self.waiting_bytes = 0
        self.request_bytes: dict[str, int] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.started_at = 0.0  # when the running job started (the loop's clock)
        # Attempts sent with their function's payload that have not said they loaded it.
        self.loading: set[str] = set()
        # Set only for children launched by ProcessPool.start(), which awaits them.
        self.ready_waiter: asyncio.Future[None] | None = None
        self._functions: OrderedDict[str, None] = OrderedDict()
        self._transfers: set[asyncio.Future[Any]] = set()

    def start(self) -> None:
        """Start the process and drop the parent's copies of the child's ends of the pipes."""
        try:
            self.process.start()
            self.started = True
            self.pid = pid = self.process.pid
            if pid is not None:
                with contextlib.suppress(AttributeError, OSError):  # Linux 5.3 and later.
                    self._pidfd = os.pidfd_open(pid)
        finally:
            for end in self._child_ends:
                end.close()

    @property
    def exit_fd(self) -> int:
        """A descriptor that becomes readable when the process exits, for ``loop.add_reader``."""
        return self._pidfd if self._pidfd is not None else self.process.sentinel

    @property
    def idle(self) -> bool:
        """Whether the child is ready and has no job."""
        return self.ready and not self.retired and not self.jobs

    @property
    def room(self) -> int:
        """How many more jobs the child can take now (0 until it is ready)."""
        if not self.ready or self.retired:
            return 0
        return self.depth - len(self.jobs)

    @property
    def running(self) -> Job | None:
        """The job the child runs now, if any."""
        return self.jobs[0] if self.jobs else None

    @property
    def read_fd(self) -> int:
        """What tells the parent to read the job pipe: the pipe itself, or the doorbell."""
        return self.doorbell.fileno() if self.doorbell is not None else self.conn.fileno()

    def drain_doorbell(self) -> bool:
        """Take in the rings; False once the doorbell is closed by every writer."""
        if self.doorbell is None:
            return True
        try:
            return bool(os.read(self.doorbell.fileno(), 4096))
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False

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
        """SIGKILL the child's process group, and the child, unless it was already reaped.

        Until the parent reaps it, the child (a zombie at worst) holds its pid, so the group id
        can name no one else; once the child is gone, the group lives on while members remain.
        """
        if not self.started or self._reaped or self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # ESRCH before the child's setsid: no group yet.
        if self.process.exitcode is None:
            self.process.kill()

    def shut_pipe(self) -> None:
        """End the job pipe for both directions, although others may hold the child's end.

        Reads then see the data already buffered and EOF; blocked reads and writes on executor
        threads end at once.
        """
        with (
            contextlib.suppress(OSError, ValueError),
            socket.socket(fileno=os.dup(self.conn.fileno())) as sock,
        ):
            sock.shutdown(socket.SHUT_RDWR)

    async def reap(self) -> int | None:
        """Wait (off the loop) for the process to exit, release its resources, return its code."""
        if not self.started:
            self.close_pipes()
            return None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.process.join)
        self._reaped = True
        # The pipe was shut, so executor transfers on it end with EOF or EPIPE.
        if self._transfers:
            await asyncio.gather(*self._transfers, return_exceptions=True)
        exitcode = self.process.exitcode
        self.close_pipes()
        with contextlib.suppress(ValueError):  # Only if someone else reaped it behind our back.
            self.process.close()
        return exitcode

    def close_pipes(self) -> None:
        """Close the parent's ends of the pipes and the pidfd."""
        self.conn.close()
        self.output.close()
        if self.frames is not None:
            self.frames.close()
        if self.doorbell is not None:
            self.doorbell.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
