"""AIP-158 page tokens: opaque to clients, bound to the listing and filters that made them.

A token is URL-safe base64 of JSON ``{"s": score, "m": id, "f": digest}``: where the listing
resumes (the last entry it examined) and a digest of what was asked (the listing's name and its
filters), so a token used with other filters, or a token that is not one of ours, is refused
with INVALID_ARGUMENT instead of silently paging something else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from services.common.errors import InvalidArgument
from services.common.store import Cursor

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "decode_token", "encode_token", "page_size"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_MAX_TOKEN_CHARS = 1024


def _digest(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def page_size(requested: int) -> int:
    """The page size to use: 0 means the default, over the maximum is the maximum."""
    if requested < 0:
        raise InvalidArgument("page_size must not be negative", "INVALID_PAGE_SIZE")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(cursor: Cursor | None, query: str) -> str:
    """The next_page_token for ``cursor`` ("" when the listing ended)."""
    if cursor is None:
        return ""
    text = json.dumps({"s": cursor.score, "m": cursor.member, "f": _digest(query)})
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_token(token: str, query: str) -> Cursor | None:
    """The cursor of a page_token ("" : the first page), checked against ``query``."""
    if not token:
        return None
    try:
        if len(token) > _MAX_TOKEN_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        score, member, digest = data["s"], data["m"], data["f"]
        if not isinstance(score, int) or not isinstance(member, str) or not member:
            raise ValueError("malformed")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument(
            "page_token is not a token this listing returned", "INVALID_PAGE_TOKEN"
        ) from None
    if digest != _digest(query):
        raise InvalidArgument(
            "page_token was returned for other filters: give the filters of the first request",
            "PAGE_TOKEN_FILTERS_CHANGED",
        )
    return Cursor(score, member)
