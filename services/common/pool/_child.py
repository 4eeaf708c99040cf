"""Entry point of a pool child: load functions, run jobs one at a time, report how each ended.

A child imports only dill, pickle, traceback and ctypes on top of the protocol and isolation
modules; the parent's asyncio and protobuf machinery stays out of it so children start fast and
stay small. A result whose serialized form is over the limit is never sent: the job fails.
"""

from __future__ import annotations

import os
import pickle
import signal
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dill

from . import _protocol as proto
from ._imports import NotImportable, loads, use_code_path
from ._isolation import die_with_parent, lead_own_session, redirect_output

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["child_main"]

_MAX_MESSAGE_CHARS = 2000
_MAX_REPLACEMENT_CHARS = 200

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
    return _Rejected(proto.NOT_IMPORTABLE, unknown.error, message, message)


def child_main(
    conn: Connection[Any, Any], output: Connection[Any, Any], config: proto.ChildConfig
) -> None:
    """Serve jobs arriving on ``conn`` until the parent closes its end of the pipe.

    Everything the child and its user code write to stdout and stderr goes to ``output``.
    """
    lead_own_session()
    die_with_parent(config.parent_pid)
    streams = redirect_output(output)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle.
    use_code_path(config.code_path)  # after our own imports: users' modules shadow none of them
    owner = os.getpid()
    functions: dict[str, Callable[..., Any]] = {}
    try:
        _send(conn, (proto.READY,))
        while True:
            request: proto.Request = pickle.loads(conn.recv_bytes())
            attempt_id, function_id, function_payload, args_payload, evicted = request
            for evicted_id in evicted:
                functions.pop(evicted_id, None)
            reply = _run(functions, function_id, function_payload, args_payload, owner, config)
            streams.flush()  # All of the job's output is in the pipe before its DONE frame.
            _send(conn, (proto.DONE, attempt_id, *reply))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # The parent has gone or closed the pipe: nothing left to do.


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
) -> _Reply:
    limit = config.max_result_bytes
    try:
        fn = _load_function(functions, function_id, function_payload, config.code_path)
        args, kwargs = _load_arguments(args_payload, config.code_path)
    except _Rejected as rejected:
        if rejected.kind == proto.NOT_IMPORTABLE:
            functions.pop(function_id, None)  # the parent forgets it too: both agree
        return _failure(
            rejected.kind, rejected.error, rejected.context, limit=limit, message=rejected.message
        )
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: user code must not end us.
        return _failure(proto.RAISED, exc, "", skip_frames=1, limit=limit)
    finally:
        if os.getpid() != owner:
            os._exit(0)  # A fork made by user code returned here; only the owner may reply.
    try:
        result: bytes = dill.dumps(value)
    except BaseException as exc:
        return _failure(proto.UNSERIALIZABLE, exc, "result could not be serialized", limit=limit)
    del value
    if len(result) > limit:
        message = f"the serialized result of {len(result)} bytes is over the limit of {limit} bytes"
        return (proto.TOO_LARGE, dill.dumps(ValueError(message)), message, "")
    return (proto.OK, result, "", "")


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
