"""The gateway's static payload checks: nothing is unpickled, bad input is rejected clearly."""

from __future__ import annotations

import pickle

import dill
import pytest

from services.common.errors import InvalidArgument, PayloadTooLarge
from services.gateway import payload

LIMIT = 1024 * 1024


def test_functions_pass() -> None:
    def local(x: int) -> int:
        return x

    for fn in (local, len, lambda: 1):
        payload.check_function_payload(dill.dumps(fn), LIMIT)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "PAYLOAD_EMPTY"),
        (b"payload", "PAYLOAD_NOT_PICKLE"),
        (dill.dumps(5), "PAYLOAD_NOT_FUNCTION"),
        (dill.dumps({"a": [1, 2]}), "PAYLOAD_NOT_FUNCTION"),
        (dill.dumps(len)[:-1], "PAYLOAD_NOT_PICKLE"),
    ],
)
def test_bad_function_payloads(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        payload.check_function_payload(data, LIMIT)
    assert caught.value.reason == reason
    assert caught.value.message


def test_checking_never_runs_the_payload() -> None:
    class Bomb:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, ("raise SystemExit('executed')",))

    payload.check_function_payload(pickle.dumps(Bomb()), LIMIT)  # refers to code: accepted
    payload.check_args_payload(pickle.dumps(Bomb()), LIMIT)  # and was not executed


def test_size_limit() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        payload.check_args_payload(dill.dumps(b"x" * 2048), 1024)
    assert caught.value.metadata["limit"] == "1024"


def test_args_payload_may_be_any_value() -> None:
    payload.check_args_payload(dill.dumps(((1, 2), {"a": 3})), LIMIT)
    payload.check_args_payload(dill.dumps([1]), LIMIT)  # shape is the worker's to judge
