"""The limits on request fields that the gateway enforces, in one place for it and the REST shim.

Cheap to import (no gRPC, no Redis): the REST shim states them in its OpenAPI schema and sizes
its request-body limit from the payload limit.
"""

from __future__ import annotations

import math

DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
MAX_ID_CHARS = 128
MAX_NAME_CHARS = 256
MAX_BATCH_REQUEST_ID_CHARS = 100  # leaves room for the "#index" of each task's key
DEFAULT_MAX_BATCH_ITEMS = 10_000
# The range of a google.protobuf.Duration: about 10,000 years either way.
MAX_DURATION_SECONDS = 315_576_000_000

_MIME_LINE = 76  # codecs.encode(..., "base64") breaks lines every 76 characters
_BODY_MARGIN = 1024 * 1024  # the JSON around the payload, and escapes such as "\/"


def base64_chars(size: int) -> int:
    """The length of the contract's base64 of ``size`` bytes, its newlines included."""
    chars = 4 * math.ceil(size / 3)
    return chars + math.ceil(chars / _MIME_LINE)


def max_body_bytes(max_payload_bytes: int) -> int:
    """The largest REST request body: a payload at the limit, as JSON (each newline escaped as
    two characters), plus a margin."""
    chars = 4 * math.ceil(max_payload_bytes / 3)
    return chars + 2 * math.ceil(chars / _MIME_LINE) + _BODY_MARGIN
