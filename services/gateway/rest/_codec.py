"""Base64 text <-> bytes for payloads and results, as the REST contract encodes them.

Clients send ``codecs.encode(dill.dumps(obj), "base64").decode()`` (base64 with a newline every
76 characters); plain base64 is accepted too. Results go back encoded the same way. Nothing here
unpickles: the shim only moves bytes.
"""

from __future__ import annotations

import base64
import codecs

__all__ = ["INVALID_BASE64", "InvalidPayloadError", "decode_payload", "encode_result"]

INVALID_BASE64 = "payload is not valid base64"


class InvalidPayloadError(ValueError):
    """A payload that is not valid base64 text; the REST layer answers 400."""


def decode_payload(text: str) -> bytes:
    """Decode base64 text, ignoring all whitespace (so MIME-style line breaks are fine).

    Raises ``InvalidPayloadError`` on characters outside the base64 alphabet or bad padding.
    """
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise InvalidPayloadError(INVALID_BASE64) from None


def encode_result(data: bytes) -> str:
    """Encode result bytes the way the contract's ``serialize`` does (base64 with newlines)."""
    return codecs.encode(data, "base64").decode("ascii")
