"""The static walk of a pickle stream, as a pure function of bytes, cheap to import.

It runs on the gateway's event loop for small payloads and in a separate process for large ones
(see ``payload.PayloadChecker``), so it imports nothing but the standard library. Nothing here
unpickles: ``pickletools`` only reads opcodes and their arguments.

Besides checking the stream, the walk tells a *bare reference* from code shipped by value: a
pickle whose top object is only a module and a qualified name (``mylib double``, as plain
``dill.dumps`` writes a function of an importable module) runs only where that module imports.
"""

from __future__ import annotations

import pickletools
from typing import Any, NamedTuple

_CODE_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST"})
_STRING_OPCODES = frozenset(
    {
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
    }
)
_PUT_OPCODES = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPCODES = frozenset({"GET", "BINGET", "LONG_BINGET"})
_TUPLE_SIZES = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
# A bare reference needs a handful of stack and memo entries per dotted part; past this many
# the stream holds more than a reference, and the walk stops evaluating (it still checks).
_MAX_ENTRIES = 256


class Scan(NamedTuple):
    """What a walk found: ``reason`` is empty for a well-formed stream, else why it is not.

    ``by_reference`` is True when the stream's object is only ``module`` and ``qualname``;
    ``protocol`` is the pickle protocol (from the PROTO opcode; 0 or 1 without one).
    """

    reason: str = ""
    message: str = ""
    refers_to_code: bool = False
    by_reference: bool = False
    module: str = ""
    qualname: str = ""
    protocol: int = 0


class _Ref(NamedTuple):
    """A global that the unpickler would import: ``module`` and a dotted ``qualname``."""

    module: str
    qualname: str


class _Getattr:
    """Stands for ``builtins.getattr``, which protocols before 4 use for dotted names."""


class _Mark:
    """Stands for the MARK opcode's place on the stack."""


_GETATTR = _Getattr()
_MARK = _Mark()


class _NotAReference(Exception):
    """The stream holds more than a bare reference."""


def _global(module: object, name: object) -> object:
    if not isinstance(module, str) or not isinstance(name, str):
        raise _NotAReference
    module = "builtins" if module == "__builtin__" else module  # protocols 0-2 name it so
    if (module, name) == ("builtins", "getattr"):
        return _GETATTR
    return _Ref(module, name)


def _reduce(function: object, args: object) -> _Ref:
    """``getattr(ref, "name")`` as a longer reference; anything else is not a reference."""
    match function, args:
        case _Getattr(), (_Ref() as ref, str() as attr):
            return _Ref(ref.module, f"{ref.qualname}.{attr}")
    raise _NotAReference


class _Reference:
    """Evaluates just enough of the stream to find a bare reference as its top object."""

    def __init__(self) -> None:
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}
        self.failed = False
        self.found: _Ref | None = None

    def feed(self, name: str, arg: Any) -> None:
        """Takes the next opcode; after one that a bare reference never has, ``failed``."""
        if name in ("PROTO", "FRAME"):
            return
        try:
            self._step(name, arg)
        except (_NotAReference, IndexError, KeyError, ValueError):
            self._give_up()
            return
        if len(self.stack) + len(self.memo) > _MAX_ENTRIES:
            self._give_up()

    def _give_up(self) -> None:
        self.failed = True
        self.stack.clear()
        self.memo.clear()

    def _step(self, name: str, arg: Any) -> None:
        stack = self.stack
        if name in _STRING_OPCODES:
            stack.append(arg if isinstance(arg, str) else None)
        elif name == "GLOBAL":
            module, _, qualname = str(arg).partition(" ")
            stack.append(_global(module, qualname))
        elif name == "STACK_GLOBAL":
            top = stack.pop()
            stack.append(_global(stack.pop(), top))
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = stack[-1]
        elif name in _PUT_OPCODES:
            self.memo[int(arg)] = stack[-1]
        elif name in _GET_OPCODES:
            stack.append(self.memo[int(arg)])
        elif name == "MARK":
            stack.append(_MARK)
        elif name == "TUPLE":
            at = max(i for i, item in enumerate(stack) if item is _MARK)
            items = tuple(stack[at + 1 :])
            del stack[at:]
            stack.append(items)
        elif name in _TUPLE_SIZES:
            size = _TUPLE_SIZES[name]
            items = tuple(stack[len(stack) - size :]) if size else ()
            if len(items) != size or _MARK in items:
                raise _NotAReference
            del stack[len(stack) - size :]
            stack.append(items)
        elif name == "REDUCE":
            args = stack.pop()
            stack.append(_reduce(stack.pop(), args))
        elif name == "STOP":
            if len(stack) == 1 and isinstance(stack[0], _Ref):
                self.found = stack[0]
        else:
            raise _NotAReference


def scan(payload: bytes) -> Scan:
    """Walks ``payload`` to its STOP opcode; says whether it is well formed and refers to code."""
    if not payload:
        return Scan("PAYLOAD_EMPTY", "is empty")
    refers_to_code = False
    stopped = False
    protocol: int | None = None
    oldest = 0  # the highest protocol an opcode needs, for a stream without PROTO
    reference = _Reference()
    try:
        for opcode, arg, _pos in pickletools.genops(payload):
            name = opcode.name
            if name in _CODE_OPCODES:
                refers_to_code = True
            if protocol is None:
                if name == "PROTO":
                    protocol = int(arg or 0)
                oldest = max(oldest, opcode.proto)
            if not reference.failed:
                reference.feed(name, arg)
            stopped = name == "STOP"
    except Exception as exc:  # genops raises ValueError and friends on any malformed stream
        return Scan("PAYLOAD_NOT_PICKLE", f"is not a valid pickle stream: {exc}")
    if not stopped:
        return Scan("PAYLOAD_NOT_PICKLE", "is not a complete pickle stream")
    found = reference.found
    return Scan(
        refers_to_code=refers_to_code,
        by_reference=found is not None,
        module=found.module if found is not None else "",
        qualname=found.qualname if found is not None else "",
        protocol=protocol if protocol is not None else oldest,
    )


def scan_all(payloads: list[bytes]) -> list[Scan]:
    """``scan`` of each payload, up to and including the first that is not well formed."""
    out: list[Scan] = []
    for item in payloads:
        out.append(scan(item))
        if out[-1].reason:
            break
    return out
