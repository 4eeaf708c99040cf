"""Wire format between the pool and its children.

Each frame is one ``Connection.send_bytes`` of a tuple pickled with protocol 5.

Parent to child, one frame per job:
    ``(attempt_id, function_id, function_payload | None, args_payload, evicted_function_ids)``
    The payload is ``None`` when the child already holds ``function_id``.

The child's stdout and stderr (file descriptors 1 and 2) go to a second pipe, which the
parent reads as plain bytes and keeps a bounded part of per job.

Child to parent:
    ``(READY,)`` once, when the child can take work.
    ``(LARGE, size)`` announces that the next frame is large, so the parent reads it off the loop.
    ``(DONE, attempt_id, kind, result, message, traceback)`` once per job.

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

READY: Final = "ready"
LARGE: Final = "large"
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
KINDS: Final = frozenset(
    {OK, RAISED, BAD_FUNCTION, BAD_ARGUMENTS, UNSERIALIZABLE, TOO_LARGE, NOT_IMPORTABLE}
)

Request = tuple[str, str, bytes | None, bytes, tuple[str, ...]]


class ProtocolError(ValueError):
    """A child sent a frame that does not follow this protocol."""


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """What a child is told at start: its result limit, who its parent must be, its code path.

    ``parent_pid`` is the process that starts the child; a child that finds another parent
    when it starts (the first one is already gone) exits. ``None`` skips that check.
    ``code_path`` goes at the front of the child's ``sys.path`` before it loads any payload,
    so functions pickled by reference to users' modules import from there.
    """

    max_result_bytes: int
    parent_pid: int | None
    code_path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ready:
    """The child has started and waits for work."""


@dataclass(frozen=True, slots=True)
class Large:
    """The next frame is ``size`` bytes long."""

    size: int


@dataclass(frozen=True, slots=True)
class Done:
    """The child finished a job; ``kind`` is one of ``KINDS``."""

    attempt_id: str
    kind: str
    result: bytes
    message: str
    traceback: str


Frame = Ready | Large | Done


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
