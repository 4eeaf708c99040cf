"""The static walk of a pickle stream, as a pure function of bytes, cheap to import.

It runs on the gateway's event loop for small payloads and in a separate process for large ones
(see ``payload.PayloadChecker``), so it imports nothing but the standard library. Nothing here
unpickles: ``pickletools`` only reads opcodes and their arguments.
"""

from __future__ import annotations

import pickletools
from typing import NamedTuple

_CODE_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST"})


class Scan(NamedTuple):
    """What a walk found: ``reason`` is empty for a well-formed stream, else why it is not."""

    reason: str = ""
    message: str = ""
    refers_to_code: bool = False


def scan(payload: bytes) -> Scan:
    """Walks ``payload`` to its STOP opcode; says whether it is well formed and refers to code."""
    if not payload:
        return Scan("PAYLOAD_EMPTY", "is empty")
    refers_to_code = False
    stopped = False
    try:
        for opcode, _arg, _pos in pickletools.genops(payload):
            if opcode.name in _CODE_OPCODES:
                refers_to_code = True
            stopped = opcode.name == "STOP"
    except Exception as exc:  # genops raises ValueError and friends on any malformed stream
        return Scan("PAYLOAD_NOT_PICKLE", f"is not a valid pickle stream: {exc}")
    if not stopped:
        return Scan("PAYLOAD_NOT_PICKLE", "is not a complete pickle stream")
    return Scan(refers_to_code=refers_to_code)


def scan_all(payloads: list[bytes]) -> list[Scan]:
    """``scan`` of each payload, up to and including the first that is not well formed."""
    out: list[Scan] = []
    for item in payloads:
        out.append(scan(item))
        if out[-1].reason:
            break
    return out
