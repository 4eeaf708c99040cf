"""The gateway's static payload checks: nothing is unpickled, bad input is rejected clearly."""

from __future__ import annotations

import asyncio
import pickle

import dill
import pytest

from services.common.errors import (
    InvalidArgument,
    PayloadTooLarge,
    StoreUnavailable,
    Unavailable,
)
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


# --- the checker: small payloads inline, large ones in a process, a bounded queue --------------

# Over the inline threshold, in one-byte opcodes: the worst case to walk.
_LARGE = b"\x80\x04" + b"N0" * (payload.INLINE_BYTES) + b"N."


def test_checker_checks_inline_and_in_a_process() -> None:
    async def run() -> None:
        checker = payload.PayloadChecker(LIMIT)
        try:
            await checker.check_function(dill.dumps(len))
            with pytest.raises(InvalidArgument) as caught:
                await checker.check_function(_LARGE)  # walked in the checker process
            assert caught.value.reason == "PAYLOAD_NOT_FUNCTION"
            await checker.check_args([_LARGE, dill.dumps(((1,), {}))])
            with pytest.raises(InvalidArgument) as caught:
                await checker.check_args([_LARGE, _LARGE[:-1]])
            assert (caught.value.reason, caught.value.message.split()[0]) == (
                "PAYLOAD_NOT_PICKLE",
                "payloads[1]",
            )
            with pytest.raises(PayloadTooLarge):
                await checker.check_args([b"x" * (LIMIT + 1)])
        finally:
            checker.close()

    asyncio.run(run())


def test_checker_refuses_checks_over_its_queue_as_busy_not_as_a_store_outage() -> None:
    async def run() -> None:
        checker = payload.PayloadChecker(LIMIT, max_pending_bytes=2 * len(_LARGE))
        try:
            results = await asyncio.gather(
                *(checker.check_args([_LARGE]) for _ in range(3)), return_exceptions=True
            )
        finally:
            checker.close()
        assert results[:2] == [None, None]
        assert isinstance(results[2], Unavailable)
        assert results[2].reason == "PAYLOAD_CHECKS_BUSY"
        assert not isinstance(results[2], StoreUnavailable)

    asyncio.run(run())


def test_checker_keeps_the_loop_free_while_it_walks() -> None:
    flood = b"\x80\x04" + b"N0" * (LIMIT // 2 - 4) + b"N."

    async def run() -> int:
        checker = payload.PayloadChecker(LIMIT)
        ticks = 0
        check = asyncio.ensure_future(checker.check_args([flood]))
        try:
            while not check.done():
                ticks += 1
                await asyncio.sleep(0)
            await check
        finally:
            checker.close()
        return ticks

    assert asyncio.run(run()) > 100  # the loop turned many times during one walk
