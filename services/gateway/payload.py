"""Static checks of users' pickled payloads. Nothing here unpickles: only workers run user code."""

from __future__ import annotations

import pickletools

from services.common.errors import InvalidArgument, PayloadTooLarge

_GLOBAL_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST"})


def _opcodes(payload: bytes, what: str) -> list[str]:
    if not payload:
        raise InvalidArgument(f"{what} is empty", "PAYLOAD_EMPTY")
    names: list[str] = []
    try:
        for opcode, _arg, _pos in pickletools.genops(payload):
            names.append(opcode.name)
    except Exception as exc:  # genops raises ValueError and friends on any malformed stream
        raise InvalidArgument(
            f"{what} is not a valid pickle stream: {exc}", "PAYLOAD_NOT_PICKLE"
        ) from None
    if not names or names[-1] != "STOP":
        raise InvalidArgument(f"{what} is not a complete pickle stream", "PAYLOAD_NOT_PICKLE")
    return names


def check_size(payload: bytes, limit: int, what: str = "payload") -> None:
    if len(payload) > limit:
        raise PayloadTooLarge(
            f"{what} is {len(payload)} bytes, over the limit of {limit} bytes",
            "PAYLOAD_TOO_LARGE",
            size=str(len(payload)),
            limit=str(limit),
        )


def check_function_payload(payload: bytes, limit: int) -> None:
    """A well-formed pickle that refers to code (a plain value such as ``5`` refers to none)."""
    check_size(payload, limit)
    names = _opcodes(payload, "payload")
    if _GLOBAL_OPCODES.isdisjoint(names):
        raise InvalidArgument(
            "payload is a pickled value, not a serialized function", "PAYLOAD_NOT_FUNCTION"
        )


def check_args_payload(payload: bytes, limit: int) -> None:
    """A well-formed pickle stream; its ((args), {kwargs}) shape is checked by the worker."""
    check_size(payload, limit)
    _opcodes(payload, "payload")
