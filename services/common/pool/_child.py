"""Entry point of a pool child: load functions, run jobs one at a time, report how each ended.

A child imports only dill, pickle, traceback and ctypes on top of the protocol and isolation
modules; the parent's asyncio and protobuf machinery stays out of it so children start fast and
stay small. A result whose serialized form is over the limit is never sent: the job fails.

At a queue depth over 1 the child holds the jobs its parent sent ahead, runs them in order,
writes each outcome as soon as its job ends, and rings the parent's doorbell
(``_protocol`` says when) instead of waking the parent with every frame.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dill

from services.common.hardening import make_non_dumpable

from . import _limits
from . import _protocol as proto
from ._imports import NotImportable, loads, use_code_path
from ._isolation import (
    Folders,
    OutputStreams,
    become,
    die_with_parent,
    lead_own_session,
    redirect_output,
    unreadable_folders,
)
from ._spawn import scrub_environ

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["child_main"]

_MAX_MESSAGE_CHARS = 2000
_MAX_REPLACEMENT_CHARS = 200
# How many functions that failed to load a child remembers, to fail their queued jobs alike.
_MAX_BROKEN = 32

# (kind, result, message, traceback): the body of a DONE frame.
_Reply = tuple[str, bytes, str, str]


class _Rejected(Exception):
    """A job whose function or arguments cannot be used; carries the failure to report.

    ``message``, when given, is the whole one-line message (else ``context: error``).
    """

    def __init__(
        self, kind: str, error: BaseException, context: str, message: str | None = None
    ) -> None:
        super().__init__(context)
        self.kind = kind
        self.error = error
        self.context = context
        self.message = message


def _not_importable(unknown: NotImportable, what: str, code_path: tuple[str, ...]) -> _Rejected:
    message = unknown.explain(what, code_path)
    if _code_path_found is None:  # no change of user: what this process sees is what was
        unreadable = unreadable_folders(code_path)
    else:  # only the folders that existed before the change (no stat of others works now)
        unreadable = [
            folder
            for folder in code_path
            if folder in _code_path_found
            and unreadable_folders([_code_path_in_use.get(folder, folder)])
        ]
    if unreadable:
        user = _user_name()
        message += (
            f"; this worker's task processes run as user {user} (uid {os.getuid()}), who cannot "
            f"read the code path folder(s) {os.pathsep.join(unreadable)}: make them readable "
            "to that user (the folders above them need not be), or choose another with --run-as"
        )
    return _Rejected(proto.NOT_IMPORTABLE, unknown.error, message, message)


# A code path folder -> the path this child reaches it by, when not the folder itself.
_code_path_in_use: dict[str, str] = {}
# The code path folders that existed when this child changed user (None: it did not).
_code_path_found: set[str] | None = None


def _become(user: proto.RunAs, code_path: tuple[str, ...]) -> None:
    """Become ``user``, keeping the folders of ``sys.path`` and the code path within reach:
    ``sys.path`` and the packages imported so far then name them as ``Folders`` says."""
    global _code_path_found
    folders = Folders([path for path in (*code_path, *sys.path) if path])
    _code_path_found = {folder for folder in code_path if folder in folders}
    become(user.uid, user.gid)
    moved = {old: new for old, new in folders.settle().items() if old != new}
    if not moved:
        return
    _code_path_in_use.update(moved)
    sys.path[:] = [_moved(path, moved) for path in sys.path]
    for module in list(sys.modules.values()):
        locations = getattr(module, "__path__", None)
        if isinstance(locations, list):  # a package: its submodules are looked up there
            locations[:] = [_moved(path, moved) for path in locations]


def _moved(path: str, moved: dict[str, str]) -> str:
    """``path`` with the longest moved folder it is in replaced by where that folder is now."""
    best = ""
    for folder in moved:
        if len(folder) > len(best) and (path == folder or path.startswith(folder + os.sep)):
            best = folder
    return moved[best] + path[len(best) :] if best else path


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


class _Runner:
    """The functions a child holds, and how it runs one job of a request."""

    def __init__(self, config: proto.ChildConfig, loaded: Callable[[str, int], None]) -> None:
        self._config = config
        self._loaded = loaded  # (attempt id, microseconds): a job's loading took time
        self._owner = os.getpid()
        self._functions: dict[str, Callable[..., Any]] = {}
        # function id -> the failure of its last payload, for jobs sent on without one.
        self._broken: collections.OrderedDict[str, _Reply] = collections.OrderedDict()
        # Whether the last job left a CPU soft limit, or a memory soft limit of its own.
        self._cpu_limited = False
        self._memory_lowered = False

    def run(self, request: proto.Request) -> tuple[str, _Reply]:
        """Run one job; return its attempt id and its reply."""
        attempt_id, function_id, function_payload, args_payload, evicted, memory, cpu = request
        for evicted_id in evicted:
            self._functions.pop(evicted_id, None)
            self._broken.pop(evicted_id, None)
        if function_payload is None and function_id in self._broken:
            # Queued behind a job whose payload failed to load: the same payload fails alike.
            return attempt_id, self._broken[function_id]
        self._limit(memory, cpu)
        reply = _run(
            self._functions,
            function_id,
            function_payload,
            args_payload,
            self._owner,
            self._config,
            memory,
            loaded=lambda seconds: self._loaded(attempt_id, round(seconds * 1_000_000)),
        )
        if function_payload is not None:
            self._broken.pop(function_id, None)
            if reply[0] in (proto.BAD_FUNCTION, proto.NOT_IMPORTABLE):
                self._broken[function_id] = reply
                while len(self._broken) > _MAX_BROKEN:
                    self._broken.popitem(last=False)
        return attempt_id, reply

    def _limit(self, memory: int, cpu: float) -> None:
        """This job's allowances, from now: ``cpu`` seconds (0: none) and ``memory`` bytes of
        its own (0: the child's maximum, set at start)."""
        if cpu > 0:
            _limits.limit_cpu(cpu)
            self._cpu_limited = True
        elif self._cpu_limited:
            _limits.unlimit_cpu()
            self._cpu_limited = False
        if memory > 0:
            _limits.lower_memory(memory)
            self._memory_lowered = True
        elif self._memory_lowered:
            _limits.restore_memory()
            self._memory_lowered = False


def child_main(
    conn: Connection[Any, Any],
    output: Connection[Any, Any],
    config: proto.ChildConfig,
    doorbell: Connection[Any, Any] | None = None,
) -> None:
    """Serve jobs arriving on ``conn`` until the parent closes its end of the pipe.

    Everything the child and its user code write to stdout and stderr goes to ``output``.
    ``doorbell`` (a queue depth over 1) is rung when the parent should read ``conn``.
    """
    lead_own_session()
    if config.environment is not None:
        scrub_environ(config.environment)  # spawned: already so at exec; fork: what it can
    if config.run_as is not None:
        _become(config.run_as, config.code_path)
    make_non_dumpable()  # no process of the same user reads our memory (others' tasks)
    die_with_parent(config.parent_pid)  # after become: a change of user clears the signal
    # A descriptor of the output pipe of our own, for the markers: user code may close 1 and 2.
    marker_fd = os.dup(output.fileno()) if doorbell is not None else -1
    streams = redirect_output(output)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle.
    # After our own imports: users' modules shadow none of them.
    use_code_path([_code_path_in_use.get(folder, folder) for folder in config.code_path])
    bell = _Doorbell(doorbell) if doorbell is not None else None

    def loaded(attempt_id: str, microseconds: int) -> None:
        frame = (proto.LOADED, attempt_id, microseconds)
        if bell is None:
            _send(conn, frame)
        else:  # rung at once: the parent moves the job's time limit now, not at its next read
            bell.send(conn, proto.encode(frame))
            bell.ring(force=True)

    runner = _Runner(config, loaded)
    _limits.prepare_cpu_limit()  # a job may bring a CPU limit of its own
    if config.max_memory_bytes > 0:  # last: what we map now is ours, the allowance the jobs'
        _limits.limit_memory(config.max_memory_bytes)
    try:
        _send(conn, (proto.READY,))
        if bell is None:
            _serve_one_at_a_time(conn, runner, streams)
        else:
            _serve_queue(conn, runner, streams, bell, marker_fd, config)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # The parent has gone or closed the pipe: nothing left to do.


def _serve_one_at_a_time(
    conn: Connection[Any, Any], runner: _Runner, streams: OutputStreams
) -> None:
    while True:
        batch: proto.Batch = pickle.loads(conn.recv_bytes())
        for request in batch:
            attempt_id, reply = runner.run(request)
            streams.flush()  # All of the job's output is in the pipe before its DONE frame.
            _send(conn, (proto.DONE, attempt_id, *reply))


def _serve_queue(
    conn: Connection[Any, Any],
    runner: _Runner,
    streams: OutputStreams,
    doorbell: _Doorbell,
    marker_fd: int,
    config: proto.ChildConfig,
) -> None:
    start = config.output_marker + proto.START
    end = config.output_marker + proto.END
    queue: collections.deque[proto.Request] = collections.deque()
    doorbell.ring(force=True)  # for READY
    while True:
        if not queue:
            if not conn.poll():
                doorbell.ring()  # nothing left to run: the parent reads what we wrote
            queue.extend(pickle.loads(conn.recv_bytes()))
            continue
        request = queue.popleft()
        _write_marker(marker_fd, start)
        attempt_id, reply = runner.run(request)
        streams.flush()
        _write_marker(marker_fd, end)
        doorbell.send(conn, proto.encode((proto.DONE, attempt_id, *reply)))


def _write_marker(fd: int, marker: bytes) -> None:
    # One write of a few bytes is atomic on a pipe: no other writer's bytes land inside it.
    with contextlib.suppress(InterruptedError):
        os.write(fd, marker)


class _Doorbell:
    """Tells the parent when to read the job pipe: one byte on a pipe of its own.

    The main thread writes frames and rings when it has nothing left to run or the unread data
    reaches a bound; a helper thread rings when a frame has waited ``RING_SECONDS``, so an
    outcome is not held back by the long job that follows it.
    """

    def __init__(self, conn: Connection[Any, Any]) -> None:
        self._fd = conn.fileno()
        self._conn = conn  # keeps the descriptor open
        os.set_blocking(self._fd, False)
        self._lock = threading.Condition()
        self._since: float | None = None  # when the oldest unread frame was written
        self._frames = 0
        self._bytes = 0
        threading.Thread(target=self._watch, name="faas-pool-doorbell", daemon=True).start()

    def send(self, conn: Connection[Any, Any], data: bytes) -> None:
        """Write one frame, ringing first when the parent must read before it fits."""
        if len(data) > proto.RING_BYTES:
            # The parent reads a large frame whole as soon as it sees the announcement, so our
            # write may block only while it reads.
            conn.send_bytes(proto.encode((proto.LARGE, len(data))))
            self.ring(force=True)
            conn.send_bytes(data)
            return
        with self._lock:
            if self._frames >= proto.RING_FRAMES or self._bytes + len(data) > proto.RING_BYTES:
                self._ring()
        conn.send_bytes(data)
        with self._lock:
            self._frames += 1
            self._bytes += len(data)
            if self._since is None:
                self._since = time.monotonic()
                self._lock.notify()

    def ring(self, *, force: bool = False) -> None:
        """Ring if a frame is unread (or ``force``)."""
        with self._lock:
            if force or self._since is not None:
                self._ring()

    def _ring(self) -> None:
        self._since = None
        self._frames = self._bytes = 0
        # Full: rings are unread, so the parent will read. Broken: the parent is gone.
        with contextlib.suppress(OSError):
            os.write(self._fd, b"\x01")

    def _watch(self) -> None:
        with self._lock:
            while True:
                if self._since is None:
                    self._lock.wait()
                    continue
                delay = self._since + proto.RING_SECONDS - time.monotonic()
                if delay > 0:
                    self._lock.wait(delay)
                else:
                    self._ring()


def _send(conn: Connection[Any, Any], message: tuple[object, ...]) -> None:
    data = proto.encode(message)
    if len(data) > proto.LARGE_FRAME_BYTES:
        conn.send_bytes(proto.encode((proto.LARGE, len(data))))
    conn.send_bytes(data)


def _run(
    functions: dict[str, Callable[..., Any]],
    function_id: str,
    function_payload: bytes | None,
    args_payload: bytes,
    owner: int,
    config: proto.ChildConfig,
    own_memory: int = 0,
    loaded: Callable[[float], None] | None = None,
) -> _Reply:
    """Runs one job; ``own_memory`` is its own memory limit in bytes (0: the child's maximum).

    ``loaded`` is told how many seconds loading the function and arguments took, when that
    unpickled a function payload or imported a module: the job's time limit starts after it.
    """
    limit = config.max_result_bytes
    memory = own_memory or config.max_memory_bytes
    modules = len(sys.modules)
    began = time.monotonic()
    try:
        fn = _load_function(functions, function_id, function_payload, config.code_path)
        args, kwargs = _load_arguments(args_payload, config.code_path)
    except _Rejected as rejected:
        if rejected.kind == proto.NOT_IMPORTABLE:
            functions.pop(function_id, None)  # the parent forgets it too: both agree
        return _failure(
            rejected.kind, rejected.error, rejected.context, limit=limit, message=rejected.message
        )
    if loaded is not None and (function_payload is not None or len(sys.modules) != modules):
        loaded(time.monotonic() - began)
    try:
        value = fn(*args, **kwargs)
    except MemoryError as exc:
        if memory > 0:
            return _over_memory(exc, config, memory, own=own_memory > 0)
        return _failure(proto.RAISED, exc, "", skip_frames=1, limit=limit)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: user code must not end us.
        return _failure(proto.RAISED, exc, "", skip_frames=1, limit=limit)
    finally:
        if os.getpid() != owner:
            os._exit(0)  # A fork made by user code returned here; only the owner may reply.
    try:
        result: bytes = dill.dumps(value)
    except MemoryError as exc:
        del value
        if memory > 0:
            return _over_memory(exc, config, memory, own=own_memory > 0)
        return _failure(proto.UNSERIALIZABLE, exc, "result could not be serialized", limit=limit)
    except BaseException as exc:
        return _failure(proto.UNSERIALIZABLE, exc, "result could not be serialized", limit=limit)
    del value
    if len(result) > limit:
        message = f"the serialized result of {len(result)} bytes is over the limit of {limit} bytes"
        return (proto.TOO_LARGE, dill.dumps(ValueError(message)), message, "")
    return (proto.OK, result, "", "")


def _over_memory(
    error: MemoryError, config: proto.ChildConfig, memory: int, *, own: bool
) -> _Reply:
    """The reply for a job that ran out of the address space its limit leaves it.

    The frames of the traceback are cleared first, so what the job allocated is freed before
    the reply is built (and the next job has the memory back).
    """
    tb = error.__traceback__
    if tb is not None:
        traceback.clear_frames(tb)
    text = "".join(traceback.format_exception(type(error), error, tb)) if tb is not None else ""
    error.__traceback__ = None
    del tb
    mib = memory // (1024 * 1024)
    source = "its memory_limit_mb" if own else "--max-task-memory-mb, FAAS_MAX_TASK_MEMORY_MB"
    message = f"task went over its memory limit of {mib} MiB ({source})"
    result: bytes = dill.dumps(MemoryError(message))
    return (proto.MEMORY_LIMIT, result, message, _clip(text, config.max_result_bytes))


def _load_function(
    functions: dict[str, Callable[..., Any]],
    function_id: str,
    payload: bytes | None,
    code_path: tuple[str, ...],
) -> Callable[..., Any]:
    if payload is not None:
        context = "function could not be deserialized"
        try:
            loaded = loads(payload)
        except NotImportable as unknown:
            raise _not_importable(unknown, "function", code_path) from None
        except BaseException as exc:
            raise _Rejected(proto.BAD_FUNCTION, exc, context) from None
        if not callable(loaded):
            error = TypeError(f"the payload holds a {type(loaded).__name__}, not a callable")
            raise _Rejected(proto.BAD_FUNCTION, error, context)
        functions[function_id] = loaded
    fn = functions.get(function_id)
    if fn is None:
        missing = LookupError(f"function {function_id} is not loaded in this worker process")
        raise _Rejected(proto.BAD_FUNCTION, missing, "function unavailable")
    return fn


def _load_arguments(
    payload: bytes, code_path: tuple[str, ...]
) -> tuple[tuple[Any, ...] | list[Any], dict[str, Any]]:
    try:
        loaded = loads(payload)
    except NotImportable as unknown:
        raise _not_importable(unknown, "arguments", code_path) from None
    except BaseException as exc:
        raise _Rejected(proto.BAD_ARGUMENTS, exc, "arguments could not be deserialized") from None
    context = "invalid arguments payload"
    if not isinstance(loaded, tuple) or len(loaded) != 2:
        shape = f"a tuple of {len(loaded)}" if isinstance(loaded, tuple) else type(loaded).__name__
        error = TypeError(f"expected a 2-tuple (args, kwargs), got {shape}")
        raise _Rejected(proto.BAD_ARGUMENTS, error, context)
    args, kwargs = loaded
    if not isinstance(args, tuple | list):
        error = TypeError(
            f"positional arguments must be a tuple or list, got {type(args).__name__}"
        )
        raise _Rejected(proto.BAD_ARGUMENTS, error, context)
    if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
        error = TypeError("keyword arguments must be a dict with str keys")
        raise _Rejected(proto.BAD_ARGUMENTS, error, context)
    return args, kwargs


def _failure(
    kind: str,
    error: BaseException,
    context: str,
    *,
    limit: int,
    skip_frames: int = 0,
    message: str | None = None,
) -> _Reply:
    """Build a failure reply of at most about ``limit`` bytes.

    ``skip_frames`` drops this module's frames from the traceback; ``message`` replaces the
    default one, ``context: error``.
    """
    summary = _describe(error)
    if message is None:
        message = f"{context}: {summary}" if context else summary
    tb = error.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    text = "".join(traceback.format_exception(type(error), error, tb)) if tb is not None else ""
    return (kind, _dump_exception(error, summary, limit), _one_line(message), _clip(text, limit))


def _clip(text: str, limit: int) -> str:
    """Keep the end of a long traceback: the innermost frames and the exception."""
    if len(text) <= limit:
        return text
    marker = f"[{len(text) - limit} characters of traceback cut]\n"
    return marker + text[len(text) - max(limit - len(marker), 0) :]


def _describe(error: BaseException) -> str:
    try:
        detail = str(error)
    except Exception:
        detail = "<str() failed>"
    name = type(error).__name__
    return f"{name}: {detail}" if detail else name


def _one_line(text: str) -> str:
    line = " ".join(part.strip() for part in text.splitlines() if part.strip())
    if len(line) > _MAX_MESSAGE_CHARS:
        line = line[: _MAX_MESSAGE_CHARS - 3] + "..."
    return line


def _dump_exception(error: BaseException, summary: str, limit: int) -> bytes:
    """Serialize ``error``; one that cannot make a round trip is replaced by a RuntimeError.

    So is one whose serialized form is over ``limit`` bytes, with a short summary.
    """
    try:
        data: bytes = dill.dumps(error)
        if len(data) > limit:
            short = summary[:_MAX_REPLACEMENT_CHARS]
            text = f"{short} (its serialized form of {len(data)} bytes is over the limit)"
            data = dill.dumps(RuntimeError(text))
        else:
            dill.loads(data)
    except BaseException:
        try:
            text = repr(error)
        except Exception:
            text = type(error).__name__
        data = dill.dumps(RuntimeError(text[:limit]))
    return data
