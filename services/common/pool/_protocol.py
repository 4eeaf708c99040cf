"""Wire format between the pool and its children.

Each frame is one ``Connection.send_bytes`` of a tuple pickled with protocol 5.

Parent to child, one frame per batch of jobs (one job at ``queue_depth`` 1), a tuple of:
    ``(attempt_id, function_id, function_payload | None, args_payload, evicted_function_ids)``
    The payload is ``None`` when the child already holds ``function_id``. The child runs the
    jobs of its frames one at a time, in the order they were sent.

The child's stdout and stderr (file descriptors 1 and 2) go to a second pipe, which the
parent reads as plain bytes and keeps a bounded part of per job. With a queue depth over 1,
the child brackets each job's output with ``marker + START`` and ``marker + END`` (``marker``
is random, from ``ChildConfig``), so the parent can tell one job's output from the next's.

Child to parent:
    ``(READY,)`` once, when the child can take work.
    ``(LARGE, size)`` announces that the next frame is ``size`` bytes, so the parent reads it
    off the loop: a frame over ``LARGE_FRAME_BYTES``, or (queued jobs) over ``RING_BYTES``.
    ``(LOADED, attempt_id, microseconds)`` when a job has loaded its function and arguments
    and the loading unpickled a function payload or imported a module (the time it took), so
    the parent counts the job's time limit from there (the doorbell is rung at once).
    ``(DONE, attempt_id, kind, result, message, traceback)`` once per job, written as soon as
    the job ends, so an outcome outlives a death of the child during a later job.

With a queue depth over 1 the parent does not read the job pipe on every frame: the child
rings a third pipe, the doorbell (one byte), when the parent should read what it has written:
when it has nothing left to run, when the unread frames reach ``RING_FRAMES`` or
``RING_BYTES``, before a large frame, and (from a helper thread) when an outcome has waited
``RING_SECONDS``. So a burst of short jobs costs the parent one wake-up per chunk of outcomes,
and no outcome waits for the end of a long job after it.

Child frames hold only ``str``, ``bytes`` and ``int``, so the parent decodes them without
resolving any class: user code in a child cannot make the parent import or call anything.
This module is imported by the children, so it must stay light.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Final

PICKLE_PROTOCOL: Final = 5
# Frames larger than this are written and read on an executor thread, not on the event loop.
LARGE_FRAME_BYTES: Final = 1 << 20

# The child rings the doorbell once this many frames or bytes are unread, or once the oldest
# unread frame is this old. The byte bound keeps the unread data well under the socket's buffer,
# so a child never blocks on a write that the parent has not been told to read.
RING_FRAMES: Final = 64
RING_BYTES: Final = 32 * 1024
RING_SECONDS: Final = 0.002
# Markers in a child's output stream (after ChildConfig.output_marker).
START: Final = b"S"
END: Final = b"E"

READY: Final = "ready"
LARGE: Final = "large"
LOADED: Final = "loaded"
DONE: Final = "done"

# How a job ended, as the child sees it; the parent maps these to FailureCause values.
OK: Final = "ok"
RAISED: Final = "raised"
BAD_FUNCTION: Final = "bad_function"
BAD_ARGUMENTS: Final = "bad_arguments"
UNSERIALIZABLE: Final = "unserializable"
TOO_LARGE: Final = "too_large"
# The function or arguments refer to a module this child cannot import; the child then holds
# no copy of the job's function (as after BAD_FUNCTION).
NOT_IMPORTABLE: Final = "not_importable"
# The job ran out of the address space ChildConfig.max_memory_bytes leaves it (MemoryError).
MEMORY_LIMIT: Final = "memory_limit"
KINDS: Final = frozenset(
    {
        OK,
        RAISED,
        BAD_FUNCTION,
        BAD_ARGUMENTS,
        UNSERIALIZABLE,
        TOO_LARGE,
        NOT_IMPORTABLE,
        MEMORY_LIMIT,
    }
)

# (attempt id, function id, function payload or None when the child holds it, arguments,
# function ids the child may forget, the job's memory limit in bytes and CPU limit in seconds
# (0: the child's maximum from its ChildConfig; the pool sends at most that maximum))
Request = tuple[str, str, bytes | None, bytes, tuple[str, ...], int, float]
Batch = tuple[Request, ...]


class ProtocolError(ValueError):
    """A child sent a frame that does not follow this protocol."""


@dataclass(frozen=True, slots=True)
class RunAs:
    """The unprivileged user a child of a root worker becomes before it loads any payload."""

    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """What a child is told at start: its result limit, who its parent must be, its code path.

    ``parent_pid`` is the process that starts the child; a child that finds another parent
    when it starts (the first one is already gone) exits. ``None`` skips that check.
    ``code_path`` goes at the front of the child's ``sys.path`` before it loads any payload,
    so functions pickled by reference to users' modules import from there.
    ``queue_depth`` is how many jobs the parent may give the child before it reports one;
    over 1, the child brackets each job's output with ``output_marker`` and rings a doorbell.
    ``environment`` is the child's whole environment (spawned children are exec'd with it; fork
    and forkserver ones make ``os.environ`` match it). ``run_as``, when given, is the user the
    child becomes, after its pipes are set up and before it loads anything of the user's.
    ``max_memory_bytes`` (0: none) is the address space a job may add to what the child uses
    when it is ready (RLIMIT_AS, hard limit set once; a job with a lower limit of its own gets a
    lower soft limit while it runs); ``max_cpu_seconds`` (0: none) the CPU time each job may
    use, or the job's own lower limit (RLIMIT_CPU, set before each job; SIGXCPU then ends the
    child).
    """

    max_result_bytes: int
    parent_pid: int | None
    code_path: tuple[str, ...] = ()
    queue_depth: int = 1
    output_marker: bytes = b""
    environment: dict[str, str] | None = None
    run_as: RunAs | None = None
    max_memory_bytes: int = 0
    max_cpu_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Ready:
    """The child has started and waits for work."""


@dataclass(frozen=True, slots=True)
class Large:
    """The next frame is ``size`` bytes long."""

    size: int


@dataclass(frozen=True, slots=True)
class Loaded:
    """The child loaded a job's function and arguments, which took ``microseconds``."""

    attempt_id: str
    microseconds: int


@dataclass(frozen=True, slots=True)
class Done:
    """The child finished a job; ``kind`` is one of ``KINDS``."""

    attempt_id: str
    kind: str
    result: bytes
    message: str
    traceback: str


Frame = Ready | Large | Loaded | Done


def encode(message: tuple[object, ...]) -> bytes:
    """Pickle one frame."""
    return pickle.dumps(message, protocol=PICKLE_PROTOCOL)


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles builtin containers and scalars only; any class reference is refused."""

    def find_class(self, module: str, name: str) -> object:
        raise ProtocolError(f"a child frame may not reference {module}.{name}")


def decode_child_frame(data: bytes) -> Frame:
    """Decode and check one frame sent by a child; raise ``ProtocolError`` if it is invalid."""
    try:
        message = _PlainUnpickler(io.BytesIO(data)).load()
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"undecodable frame: {type(exc).__name__}: {exc}") from exc
    match message:
        case (str() as tag,) if tag == READY:
            return Ready()
        case (str() as tag, int() as size) if tag == LARGE and size >= 0:
            return Large(size)
        case (str() as tag, str() as attempt_id, int() as micros) if tag == LOADED and micros >= 0:
            return Loaded(attempt_id, micros)
        case (
            str() as tag,
            str() as attempt_id,
            str() as kind,
            bytes() as result,
            str() as text,
            str() as tb,
        ) if tag == DONE and kind in KINDS:
            return Done(attempt_id, kind, result, text, tb)
    raise ProtocolError(f"unexpected frame of type {type(message).__name__}")
