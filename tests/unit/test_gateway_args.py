"""The gateway's checks of request fields that need no payload walk: Durations."""

from __future__ import annotations

import pytest
from google.protobuf import duration_pb2

from services.common.errors import InvalidArgument
from services.gateway.convert import duration_arg
from services.gateway.limits import MAX_DURATION_SECONDS


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (0, 0, None),  # present but not positive: the default, as before
        (1, 500_000_000, 1.5),
        (0, 999_999_999, 0.999999999),
        (-1, -5, None),
        (MAX_DURATION_SECONDS, 999_999_999, MAX_DURATION_SECONDS + 0.999999999),
    ],
)
def test_valid_durations(seconds: int, nanos: int, expected: float | None) -> None:
    assert duration_arg(duration_pb2.Duration(seconds=seconds, nanos=nanos), True, "t") == expected


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (1, -1),
        (-1, 1),
        (0, 1_000_000_000),
        (0, -1_000_000_000),
        (MAX_DURATION_SECONDS + 1, 0),
        (-MAX_DURATION_SECONDS - 1, 0),
        (2**63 - 1, 0),
    ],
)
def test_invalid_durations(seconds: int, nanos: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        duration_arg(duration_pb2.Duration(seconds=seconds, nanos=nanos), True, "timeout")
    assert caught.value.reason == "INVALID_DURATION"
    assert caught.value.message.startswith("timeout is not a valid Duration")


def test_absent_duration_is_none() -> None:
    assert duration_arg(duration_pb2.Duration(seconds=1, nanos=-1), False, "t") is None
