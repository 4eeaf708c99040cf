"""The page-token codec of the gateway's listings: opaque, round-trips, and bound to its filters."""

from __future__ import annotations

import base64
import json

import pytest

from services.common.errors import InvalidArgument
from services.common.store import Cursor
from services.gateway.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    decode_token,
    encode_token,
    page_size,
)


def test_a_token_round_trips_for_the_same_query() -> None:
    cursor = Cursor(1_796_141_146_176, "4f0c-task id with spaces/ünicode")
    token = encode_token(cursor, "tasks:FAILED")
    assert token and "=" not in token and "/" not in token and "+" not in token  # URL-safe
    assert decode_token(token, "tasks:FAILED") == cursor


def test_no_cursor_is_the_empty_token_and_the_first_page() -> None:
    assert encode_token(None, "q") == ""
    assert decode_token("", "q") is None


def test_a_token_used_with_other_filters_is_refused() -> None:
    token = encode_token(Cursor(5, "t1"), "tasks:FAILED")
    with pytest.raises(InvalidArgument) as caught:
        decode_token(token, "tasks:COMPLETED")
    assert caught.value.reason == "PAGE_TOKEN_FILTERS_CHANGED"


def _forged(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        "%%%%",
        "a",
        base64.urlsafe_b64encode(b"\xff\xfe not json").decode(),
        _forged({"s": 1}),
        _forged({"s": "1", "m": "t", "f": "x"}),
        _forged({"s": 1, "m": "", "f": "x"}),
        _forged([1, 2, 3]),
        "x" * 5000,
    ],
)
def test_a_token_that_is_not_ours_is_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_token(token, "q")
    assert caught.value.reason in {"INVALID_PAGE_TOKEN", "PAGE_TOKEN_FILTERS_CHANGED"}


def test_page_sizes_default_clamp_and_refuse_negatives() -> None:
    assert page_size(0) == DEFAULT_PAGE_SIZE == 50
    assert page_size(7) == 7
    assert page_size(5000) == MAX_PAGE_SIZE == 1000
    with pytest.raises(InvalidArgument):
        page_size(-1)
