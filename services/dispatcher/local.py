"""Local mode: the dispatcher runs tasks on its own pool of long-lived worker processes."""

from __future__ import annotations

import asyncio
import collections
import os
import socket

from faas.v1 import dispatcher_pb2

from services.common.function_cache import FUNCTION_CACHE_BYTES, FunctionCache
from services.common.jobs import job_of, outcome_message
from services.common.pool import Job, Outcome, ProcessPool

from .core import Dispatcher
from .scheduler import Session

# Jobs each process holds (as a worker's do); the rest of the prefetch waits in the backlog.
QUEUE_DEPTH = 4


class LocalWorker:
    """A session backed by a ProcessPool in this process: no stream, no heartbeats."""

    def __init__(self, dispatcher: Dispatcher, processes: int) -> None:
        self._dispatcher = dispatcher
        # Each batch carries every body it needs; this keeps them bounded between batches.
        self._bodies = FunctionCache(FUNCTION_CACHE_BYTES)
        self._outcomes: list[dispatcher_pb2.TaskOutcome] = []
        self._starts: list[str] = []  # attempts a process started since the last flush
        self._flush_scheduled = False
        self._backlog: collections.deque[Job] = collections.deque()
        self.pool = ProcessPool(
            processes,
            self._on_outcome,
            on_slot_ready=self._start_backlog,
            max_result_bytes=dispatcher.settings.max_result_bytes,
            max_output_bytes=dispatcher.settings.max_output_bytes,
            code_path=dispatcher.settings.code_paths,
            pass_env=dispatcher.settings.pass_env,
            run_as=dispatcher.settings.task_user,
            queue_depth=QUEUE_DEPTH,
            on_started=self._on_started,
            max_memory_bytes=dispatcher.settings.max_task_memory_mb * 1024 * 1024,
            max_cpu_seconds=dispatcher.settings.max_task_cpu_seconds,
        )
        self.session = Session(
            worker_id=f"local-{socket.gethostname()}-{os.getpid()}",
            host=socket.gethostname(),
            pid=os.getpid(),
            capacity=processes,
            mode="local",
            prefetch=dispatcher.settings.prefetch,
            remote=False,
        )
        self.session.link = self

    async def start(self) -> None:
        await self.pool.start()
        self._dispatcher.attach(self.session, [])

    async def stop(self, grace: float) -> None:
        """Takes no new tasks, lets running ones finish for up to ``grace`` s, then stops."""
        self.session.draining = True
        await self.pool.wait_idle(grace)
        await self.pool.close()

    # The session's Link: assignments go to the pool; nothing to acknowledge or close.

    def acknowledge(self, attempt_ids: list[str]) -> None:
        pass

    def close(self) -> None:
        pass

    def deliver(self, batch: dispatcher_pb2.AssignmentBatch) -> None:
        self._bodies.apply(batch)
        for a in batch.assignments:
            self._backlog.append(job_of(a, self._bodies))
        self._start_backlog()

    def _start_backlog(self) -> None:
        """Hands waiting jobs to processes with room (a replaced process has room once ready)."""
        while self._backlog and self.pool.accepting > 0:
            self.pool.submit(self._backlog.popleft())

    def _on_started(self, attempt_ids: list[str]) -> None:
        self._starts.extend(attempt_ids)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and (self._starts or self._outcomes):
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _on_outcome(self, outcome: Outcome) -> None:
        self._start_backlog()
        self._outcomes.append(outcome_message(outcome))
        self._schedule_flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        starts, self._starts = self._starts, []
        outcomes, self._outcomes = self._outcomes, []
        if starts:
            self._dispatcher.started(self.session, starts)
        if outcomes:
            self._dispatcher.report(self.session, outcomes)
