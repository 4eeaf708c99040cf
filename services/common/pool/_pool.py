"""ProcessPool: run users' functions in long-lived child processes, driven by an asyncio loop."""

from __future__ import annotations

import asyncio
import atexit
import collections
import functools
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

from . import _outcomes as outcomes
from . import _protocol as proto
from ._handle import ChildHandle, Context
from ._spawn import child_environment
from ._types import Job, Outcome

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["ProcessPool"]

logger = logging.getLogger(__name__)

# Pause before starting another child when the last one failed to start, so a broken
# environment does not become a hot loop of doomed processes.
_RESTART_DELAY = 1.0
# How long loading a function (unpickling it, importing its module) may take on top of a job's
# time limit, the first time a child runs it: under the dispatcher's --timeout-grace-seconds
# (10 s by default), which it must fit in.
LOAD_GRACE_SECONDS = 5.0
# Requests a busy child has not read beyond which a frame to it is written off the loop: the
# pipe holds about 200 KiB, and the child reads only once it has run what it holds.
_BUSY_PIPE_BYTES = 64 * 1024


class ProcessPool:
    """Runs jobs in ``size`` long-lived child processes without blocking the event loop.

    ``submit`` hands a job to a child at once, and ``on_outcome`` is called on the loop
    thread exactly once per submitted job, unless ``close`` comes first. A child that dies or
    overruns its job's time limit is killed and replaced, so the pool keeps its size; a
    replacement is a free slot only once it is ready, and ``on_slot_ready`` (when given) is
    called at that moment. Each child keeps up to ``max_cached_functions`` deserialized
    functions, and a function's payload is sent to a child only when it does not hold it yet.

    Each child holds up to ``queue_depth`` jobs (1: only the one it runs). The jobs submitted
    to one child in one turn of the loop go in one frame; the child runs them in order and
    its outcomes come back in chunks, so a burst of short jobs costs a wake-up of the loop per
    chunk, not per job. ``on_started`` (when given) is called on the loop thread with the
    attempt ids of jobs that began running, each once and before its outcome. A job's time
    limit counts from its start, not counting (up to ``load_grace`` s) the time its child took
    to load its function and arguments (unpickling, importing their modules): the first job of a
    function in a child does not time out for the import of a heavy module. When a child dies
    or overruns, only the job it was running fails; the jobs queued behind it never started,
    and go to other children.

    A job whose serialized result is over ``max_result_bytes`` fails (``RESULT_TOO_LARGE``);
    the child checks before sending, so such a result never crosses the pipe. Each outcome
    carries up to ``max_output_bytes`` of what the job wrote to stdout and stderr. Children
    import users' modules from ``code_path`` (put at the front of their ``sys.path``); a job
    whose function or arguments name a module they cannot import fails with
    ``CODE_NOT_IMPORTABLE`` and a message naming the module. Children get only an allowlist of
    this process's environment and the variables named in ``pass_env`` (``_spawn``), never its
    secrets; given ``run_as``, they become that user before loading any payload. Each child
    leads its own process group, which is killed whole when the child is retired, and dies
    with the pool's process (Linux's parent-death signal).

    ``max_memory_bytes`` (0: none) is the address space each job may allocate on top of what
    its child maps when ready (RLIMIT_AS, ``_limits``): a job that goes over fails with
    ``MEMORY_LIMIT`` and the child serves on. ``max_cpu_seconds`` (0: none) is the CPU time
    each job may use (RLIMIT_CPU, set before each job): one that goes over fails with
    ``CPU_LIMIT`` and its child is replaced.

    Every method must be called from the thread running the loop given to ``start``, which
    must live as long as the pool: children started from it die when that thread ends.
    """

    def __init__(
        self,
        size: int,
        on_outcome: Callable[[Outcome], None],
        *,
        start_method: str = "spawn",
        max_cached_functions: int = 128,
        on_slot_ready: Callable[[], None] | None = None,
        max_result_bytes: int = 16 * 1024 * 1024,
        max_output_bytes: int = 64 * 1024,
        code_path: Sequence[str] = (),
        queue_depth: int = 1,
        on_started: Callable[[list[str]], None] | None = None,
        pass_env: Sequence[str] = (),
        run_as: proto.RunAs | None = None,
        max_memory_bytes: int = 0,
        max_cpu_seconds: float = 0.0,
        load_grace: float = LOAD_GRACE_SECONDS,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        if max_cached_functions < 1:
            raise ValueError(f"max_cached_functions must be at least 1, got {max_cached_functions}")
        if max_result_bytes < 1:
            raise ValueError(f"max_result_bytes must be at least 1, got {max_result_bytes}")
        if max_output_bytes < 0:
            raise ValueError(f"max_output_bytes must be at least 0, got {max_output_bytes}")
        if queue_depth < 1:
            raise ValueError(f"queue_depth must be at least 1, got {queue_depth}")
        if max_memory_bytes < 0:
            raise ValueError(f"max_memory_bytes must be at least 0, got {max_memory_bytes}")
        if max_cpu_seconds < 0:
            raise ValueError(f"max_cpu_seconds must be at least 0, got {max_cpu_seconds}")
        if load_grace < 0:
            raise ValueError(f"load_grace must be at least 0, got {load_grace}")
        self._size = size
        self._on_outcome = on_outcome
        self._on_slot_ready = on_slot_ready
        self._on_started = on_started
        self._start_method = start_method
        self._context = _context(start_method)
        self._max_cached_functions = max_cached_functions
        self._max_result_bytes = max_result_bytes
        self._max_output_bytes = max_output_bytes
        self._code_path = tuple(code_path)
        self._depth = queue_depth
        self._run_as = run_as
        self._max_memory_bytes = max_memory_bytes
        self._max_cpu_seconds = max_cpu_seconds
        self._load_grace = load_grace
        home = run_as.home if run_as is not None else None
        self._environment = child_environment(os.environ, pass_env, home)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._children: list[ChildHandle] = []
        self._launched = 0
        self._pending: dict[str, Job] = {}  # attempt_id -> job submitted and not yet reported
        self._waiting: collections.deque[Job] = collections.deque()  # requeued, for a child
        self._starts: dict[str, None] = {}  # started, not yet passed to on_started
        self._starts_scheduled = False
        self._sends_scheduled = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._reaps: set[asyncio.Task[None]] = set()
        self._restarts: set[asyncio.TimerHandle] = set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def size(self) -> int:
        """The number of child processes the pool keeps."""
        return self._size

    @property
    def queue_depth(self) -> int:
        """How many jobs each child holds at most."""
        return self._depth

    @property
    def free_slots(self) -> int:
        """The number of ready children without a job."""
        return sum(1 for child in self._children if child.idle)

    @property
    def accepting(self) -> int:
        """How many more jobs ``submit`` takes now: room in ready children, less requeued jobs."""
        return max(sum(child.room for child in self._children) - len(self._waiting), 0)

    def running_attempts(self) -> list[str]:
        """The attempt ids submitted and not yet reported (queued ones too)."""
        return list(self._pending)

    def queued_attempts(self) -> list[str]:
        """The attempt ids submitted and not started yet."""
        queued = [job.attempt_id for child in self._children for job in list(child.jobs)[1:]]
        return queued + [job.attempt_id for job in self._waiting]

    async def start(self) -> None:
        """Start ``size`` children and return once all of them are ready for work."""
        if self._loop is not None or self._closed:
            raise RuntimeError("a process pool can be started only once")
        loop = self._loop = asyncio.get_running_loop()
        # multiprocessing.util (imported above) registered an atexit hook that joins children;
        # ours is registered later, so it runs first and kills them if close() never ran.
        atexit.register(self._kill_all)
        waiters: list[asyncio.Future[None]] = []
        try:
            for _ in range(self._size):
                child = self._launch()
                child.ready_waiter = loop.create_future()
                waiters.append(child.ready_waiter)
            await asyncio.gather(*waiters)
        except BaseException:
            await self.close()
            raise
        logger.info(
            "process pool started %d children (%s, queue depth %d)",
            self._size,
            self._start_method,
            self._depth,
        )

    def submit(self, job: Job) -> None:
        """Give ``job`` to a child now; raise RuntimeError when none has room (``accepting``).

        The job goes to the child with the fewest jobs, among those one that holds its function.
        """
        self._require_loop()
        if self._closed:
            raise RuntimeError("the process pool is closed")
        if job.attempt_id in self._pending:
            raise ValueError(f"attempt {job.attempt_id} is already running")
        child = self._choose(job) if not self._waiting else None
        if child is None:
            raise RuntimeError(
                f"no idle worker process (each ready one holds {self._depth} job(s))"
            )
        self._pending[job.attempt_id] = job
        self._idle.clear()
        self._give(child, job)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is running (True) or ``timeout`` seconds pass (False)."""
        if not self._pending:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """SIGKILL and reap every child; jobs still running or queued produce no outcome."""
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        self._waiting.clear()
        self._starts.clear()
        self._idle.set()
        for handle in self._restarts:
            handle.cancel()
        self._restarts.clear()
        for child in list(self._children):
            self._retire(child, report=False)
        if self._reaps:
            await asyncio.gather(*self._reaps, return_exceptions=True)
        atexit.unregister(self._kill_all)
        logger.info("process pool closed")

    # -- jobs ---------------------------------------------------------------------------------

    def _choose(self, job: Job) -> ChildHandle | None:
        best: ChildHandle | None = None
        best_key = (0, False)
        for child in self._children:
            if child.room <= 0:
                continue
            key = (len(child.jobs), not child.has_function(job.function_id))
            if best is None or key < best_key:
                best, best_key = child, key
        return best

    def _give(self, child: ChildHandle, job: Job) -> None:
        send_function = not child.has_function(job.function_id)
        evicted = child.remember_function(job.function_id, self._max_cached_functions)
        payload = job.function_payload if send_function else None
        memory, cpu = self._limits_of(job)
        request: proto.Request = (
            job.attempt_id,
            job.function_id,
            payload,
            job.args_payload,
            evicted,
            0 if memory == self._max_memory_bytes else memory,
            cpu,
        )
        size = len(job.args_payload) + (len(payload) if payload is not None else 0)
        child.jobs.append(job)
        if send_function:
            child.loading.add(job.attempt_id)
        logger.debug("attempt %s of task %s goes to %s", job.attempt_id, job.task_id, child.name)
        if len(child.jobs) == 1:
            self._started(child, job)
        else:
            child.waiting_bytes += size
            child.request_bytes[job.attempt_id] = size
        if self._depth == 1:
            self._send(child, (request,), size)
            return
        child.unsent.append((request, size))
        if not self._sends_scheduled:
            self._sends_scheduled = True
            self._require_loop().call_soon(self._send_all)

    def _limits_of(self, job: Job) -> tuple[int, float]:
        """The memory (bytes) and CPU time (seconds) limits ``job`` runs under: its own, at most
        the pool's maxima; 0: none."""
        return (
            int(_at_most(job.memory_limit_bytes, self._max_memory_bytes)),
            _at_most(job.cpu_limit_seconds, self._max_cpu_seconds),
        )

    def _started(self, child: ChildHandle, job: Job) -> None:
        """``job`` is now the one ``child`` runs: its capture, time limit and start notice.

        A job that brings its function's payload loads it first: until its child says how long
        that took (a LOADED frame), it may run ``load_grace`` s past its time limit.
        """
        child.output.begin()
        loop = self._require_loop()
        child.started_at = loop.time()
        if job.timeout is not None and job.timeout > 0:
            allowed = job.timeout + (self._load_grace if job.attempt_id in child.loading else 0.0)
            child.timer = loop.call_later(allowed, self._on_timeout, child, job)
        if self._on_started is not None:
            self._starts[job.attempt_id] = None
            if not self._starts_scheduled:
                self._starts_scheduled = True
                self._require_loop().call_soon(self._report_starts)

    def _report_starts(self) -> None:
        self._starts_scheduled = False
        if not self._starts or self._on_started is None:
            return
        started = list(self._starts)
        self._starts.clear()
        try:
            self._on_started(started)
        except Exception:
            logger.exception("on_started callback failed for %d attempt(s)", len(started))

    def _place_waiting(self) -> None:
        """Give requeued jobs to children with room, oldest first."""
        while self._waiting and not self._closed:
            child = self._choose(self._waiting[0])
            if child is None:
                return
            self._give(child, self._waiting.popleft())

    def _deliver(self, outcome: Outcome) -> None:
        if outcome.attempt_id in self._starts:
            self._report_starts()  # a job's start is told before its outcome
        if self._pending.pop(outcome.attempt_id, None) is None:
            return
        if not self._pending:
            self._idle.set()
        try:
            self._on_outcome(outcome)
        except Exception:
            logger.exception("on_outcome callback failed for attempt %s", outcome.attempt_id)

    # -- sending ------------------------------------------------------------------------------

    def _send_all(self) -> None:
        self._sends_scheduled = False
        for child in list(self._children):
            if child.unsent and not child.sending and not child.retired:
                self._send_unsent(child)

    def _send_unsent(self, child: ChildHandle) -> None:
        unsent, child.unsent = child.unsent, []
        batch = tuple(request for request, _ in unsent)
        self._send(child, batch, sum(size for _, size in unsent))

    def _send(self, child: ChildHandle, batch: proto.Batch, size: int) -> None:
        # A busy child reads only once it has run what it holds, so the pipe must take the
        # frame with the requests it has not read; else the frame is written off the loop.
        if size > proto.LARGE_FRAME_BYTES or child.waiting_bytes > _BUSY_PIPE_BYTES:
            self._send_off_loop(child, batch)
            return
        try:
            child.conn.send_bytes(proto.encode(batch))
        except OSError as exc:
            logger.warning("could not send %d job(s) to %s: %s", len(batch), child.name, exc)
            self._retire(child)

    def _send_off_loop(self, child: ChildHandle, batch: proto.Batch) -> None:
        loop = self._require_loop()
        child.sending = True
        transfer = loop.run_in_executor(None, _send_frame, child.conn, batch)
        child.track(transfer)
        transfer.add_done_callback(functools.partial(self._on_sent, child))

    def _on_sent(self, child: ChildHandle, transfer: asyncio.Future[None]) -> None:
        child.sending = False
        error = None if transfer.cancelled() else transfer.exception()
        if child.retired:
            return
        if error is not None:
            logger.warning("could not send a job to %s: %s", child.name, error)
            self._retire(child)
        elif child.unsent:
            self._send_unsent(child)

    # -- children -----------------------------------------------------------------------------

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the process pool has not been started")
        return self._loop

    def _launch(self) -> ChildHandle:
        loop = self._require_loop()
        self._launched += 1
        # A forkserver child's parent is the fork server, not this process.
        parent = None if self._start_method == "forkserver" else os.getpid()
        config = proto.ChildConfig(
            max_result_bytes=self._max_result_bytes,
            parent_pid=parent,
            code_path=self._code_path,
            queue_depth=self._depth,
            output_marker=os.urandom(16) if self._depth > 1 else b"",
            environment=self._environment,
            run_as=self._run_as,
            max_memory_bytes=self._max_memory_bytes,
            max_cpu_seconds=self._max_cpu_seconds,
        )
        name = f"faas-pool-{self._launched}"
        child = ChildHandle(self._context, name, config, self._max_output_bytes)
        try:
            child.start()
        except BaseException:
            child.close_pipes()
            raise
        if child.doorbell is None:
            loop.add_reader(child.read_fd, self._on_readable, child)
        else:
            loop.add_reader(child.read_fd, self._on_doorbell, child)
        loop.add_reader(child.exit_fd, self._on_exited, child)
        loop.add_reader(child.output.fileno, self._on_output, child)
        self._children.append(child)
        logger.debug("started %s (pid %s)", child.name, child.process.pid)
        return child

    def _replace(self) -> None:
        if self._closed:
            return
        try:
            child = self._launch()
        except Exception:
            logger.exception("could not start a worker process; retrying in %g s", _RESTART_DELAY)
            self._replace_later()
            return
        logger.info("started %s (pid %s) as a replacement", child.name, child.process.pid)

    def _replace_later(self) -> None:
        def fire() -> None:
            self._restarts.discard(handle)
            self._replace()

        handle = self._require_loop().call_later(_RESTART_DELAY, fire)
        self._restarts.add(handle)

    def _retire(self, child: ChildHandle, *, report: bool = True) -> str:
        """Kill ``child`` with its group and replace it; return the output of its running job.

        That job, if ``report``, fails once the child is reaped; the jobs queued behind it
        never started, and go to other children.
        """
        if child.retired:
            return ""
        child.retired = True
        loop = self._require_loop()
        self._children.remove(child)
        loop.remove_reader(child.read_fd)
        loop.remove_reader(child.exit_fd)
        loop.remove_reader(child.output.fileno)
        child.cancel_timer()
        job = child.running
        queued = list(child.jobs)[1:]
        child.jobs.clear()
        child.unsent.clear()
        child.kill()
        child.shut_pipe()
        output = child.output.take_running() if job is not None else ""
        reap = loop.create_task(self._reap(child, job if report else None, output))
        self._reaps.add(reap)
        reap.add_done_callback(self._reaps.discard)
        if self._closed or (child.ready_waiter is not None and not child.ready):
            return output  # Closing, or start() is failing and will close the pool.
        if queued:
            logger.info("%d job(s) queued in %s go to other processes", len(queued), child.name)
            self._waiting.extend(queued)
        if child.ready:
            self._replace()
        else:
            logger.error("%s exited during start-up", child.name)
            self._replace_later()
        self._place_waiting()
        return output

    async def _reap(self, child: ChildHandle, job: Job | None, output: str) -> None:
        try:
            exitcode = await child.reap()
        except Exception:
            logger.exception("could not reap %s", child.name)
            exitcode = None
        waiter = child.ready_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(
                RuntimeError(f"{child.name} exited with code {exitcode} before it was ready")
            )
        if job is not None and not self._closed:
            logger.warning(
                "%s died with exit code %s while running attempt %s",
                child.name,
                exitcode,
                job.attempt_id,
            )
            cpu = self._limits_of(job)[1]
            if cpu > 0 and exitcode == -signal.SIGXCPU:
                own = cpu != self._max_cpu_seconds
                self._deliver(outcomes.over_cpu(job, cpu, output, own=own))
            else:
                self._deliver(outcomes.process_died(job, exitcode, output))

    def _kill_all(self) -> None:
        """At interpreter exit, if close() was never awaited: do not leave children behind."""
        for child in self._children:
            child.kill()

    # -- events -------------------------------------------------------------------------------

    def _on_readable(self, child: ChildHandle) -> None:
        try:
            data = child.conn.recv_bytes()
        except (EOFError, OSError):
            self._retire(child)  # The child is gone; reaping tells how.
            return
        self._on_data(child, data)

    def _on_doorbell(self, child: ChildHandle) -> None:
        if not child.drain_doorbell():
            # Every writer is gone: the child has exited, which its exit watch handles.
            self._require_loop().remove_reader(child.read_fd)
        self._read_all(child)

    def _read_all(self, child: ChildHandle) -> None:
        """Take in every frame the child has written so far."""
        frames = child.frames
        if frames is None:
            while not child.retired and not child.reading_off_loop and child.conn.poll():
                self._on_readable(child)
            return
        while not child.retired and not child.reading_off_loop:
            try:
                data = frames.next()
            except EOFError:
                self._retire(child)  # The child is gone; reaping tells how.
                return
            if data is None:
                return
            self._on_data(child, data)

    def _on_exited(self, child: ChildHandle) -> None:
        # Take in whatever the child wrote before it exited, then retire it. Its pipe may be
        # held open by processes it forked, so shut it: reads end at the data buffered.
        child.shut_pipe()
        self._read_all(child)
        self._retire(child)

    def _on_output(self, child: ChildHandle) -> None:
        child.output.read()
        if child.output.eof:
            self._require_loop().remove_reader(child.output.fileno)

    def _on_data(self, child: ChildHandle, data: bytes) -> None:
        try:
            frame = proto.decode_child_frame(data)
        except proto.ProtocolError as exc:
            self._broke_protocol(child, str(exc))
            return
        if isinstance(frame, proto.Ready):
            self._on_ready(child)
        elif isinstance(frame, proto.Large):
            # With queued jobs a child announces smaller frames too, since it writes them
            # before it is read; off the loop, a child that dies inside one cannot hold it.
            if frame.size > proto.LARGE_FRAME_BYTES or child.frames is not None:
                self._read_off_loop(child)
            else:
                self._on_readable(child)
        elif isinstance(frame, proto.Loaded):
            self._on_loaded(child, frame)
        else:
            self._on_done(child, frame)

    def _on_loaded(self, child: ChildHandle, loaded: proto.Loaded) -> None:
        """The running job's time limit counts from its start plus its loading (at most
        ``load_grace`` s)."""
        job = child.running
        if job is None or loaded.attempt_id != job.attempt_id:
            self._broke_protocol(child, f"LOADED for unexpected attempt {loaded.attempt_id}")
            return
        child.loading.discard(job.attempt_id)
        if job.timeout is None or job.timeout <= 0:
            return
        child.cancel_timer()  # none when its timer is firing: _on_timeout sees the new one
        took = min(loaded.microseconds / 1_000_000, self._load_grace)
        deadline = child.started_at + job.timeout + took
        child.timer = self._require_loop().call_at(deadline, self._on_timeout, child, job)

    def _on_ready(self, child: ChildHandle) -> None:
        if child.ready:
            self._broke_protocol(child, "second READY frame")
            return
        child.ready = True
        logger.debug("%s is ready", child.name)
        if child.ready_waiter is not None:
            if not child.ready_waiter.done():
                child.ready_waiter.set_result(None)
            return
        self._place_waiting()
        if self._on_slot_ready is not None:
            try:
                self._on_slot_ready()
            except Exception:
                logger.exception("on_slot_ready callback failed")

    def _on_done(self, child: ChildHandle, done: proto.Done) -> None:
        job = child.running
        if job is None or done.attempt_id != job.attempt_id:
            self._broke_protocol(child, f"result for unexpected attempt {done.attempt_id}")
            return
        child.jobs.popleft()
        child.cancel_timer()
        child.loading.discard(job.attempt_id)
        if done.kind in (proto.BAD_FUNCTION, proto.NOT_IMPORTABLE):
            child.forget_function(job.function_id)
        output = child.output.take_finished()
        following = child.running
        if following is not None:  # the child starts it as it reports this one
            child.waiting_bytes -= child.request_bytes.pop(following.attempt_id, 0)
            self._started(child, following)
        self._place_waiting()
        self._deliver(outcomes.from_reply(job, done, output))

    def _on_timeout(self, child: ChildHandle, job: Job) -> None:
        child.timer = None
        self._read_all(child)  # the job may have ended (or loaded) since the loop last read
        if child.retired or child.running is not job or child.reading_off_loop:
            return
        if child.timer is not None:
            return  # a LOADED frame just read moved the limit
        loading = job.attempt_id in child.loading
        logger.warning(
            "attempt %s exceeded its time limit of %g s%s; killing %s",
            job.attempt_id,
            job.timeout,
            " while loading its function" if loading else "",
            child.name,
        )
        elapsed = self._require_loop().time() - child.started_at
        output = self._retire(child, report=False)
        self._deliver(outcomes.timed_out(job, output, loading_for=elapsed if loading else None))

    def _broke_protocol(self, child: ChildHandle, reason: str) -> None:
        logger.error("%s broke the pool protocol (%s); killing it", child.name, reason)
        self._retire(child)

    # -- large frames -------------------------------------------------------------------------

    def _read_off_loop(self, child: ChildHandle) -> None:
        loop = self._require_loop()
        if child.doorbell is None:
            loop.remove_reader(child.read_fd)
        child.reading_off_loop = True
        receive = child.conn.recv_bytes if child.frames is None else child.frames.next_blocking
        transfer = loop.run_in_executor(None, receive)
        child.track(transfer)
        transfer.add_done_callback(functools.partial(self._on_large_frame, child))

    def _on_large_frame(self, child: ChildHandle, transfer: asyncio.Future[bytes]) -> None:
        child.reading_off_loop = False
        error = None if transfer.cancelled() else transfer.exception()
        if child.retired or transfer.cancelled():
            return
        if error is not None:
            self._retire(child)  # The child died part-way through the frame.
            return
        if child.doorbell is None:
            self._require_loop().add_reader(child.read_fd, self._on_readable, child)
        self._on_data(child, transfer.result())
        if child.doorbell is not None:
            self._read_all(child)  # rings that came during the read are for what follows


def _send_frame(conn: Connection[Any, Any], batch: proto.Batch) -> None:
    conn.send_bytes(proto.encode(batch))


def _context(start_method: str) -> Context:
    if start_method == "spawn":
        return multiprocessing.get_context("spawn")
    if start_method == "forkserver":
        return multiprocessing.get_context("forkserver")
    if start_method == "fork":
        return multiprocessing.get_context("fork")
    raise ValueError(f"unknown start method {start_method!r}: use spawn, forkserver or fork")


def _at_most(own: float, maximum: float) -> float:
    """A job's own limit under a maximum, where 0 means "none" for both."""
    if own <= 0:
        return maximum
    if maximum <= 0:
        return own
    return min(own, maximum)
