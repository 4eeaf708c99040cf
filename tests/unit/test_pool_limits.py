"""Bounds on what a user's function sends back: the size of its result and of its output."""

from __future__ import annotations

import os
import pickle
import sys
import time

import dill
import pytest
from faas.v1 import common_pb2

from services.common.pool import ProcessPool
from tests.unit.test_pool import Recorder, completed_value, make_job, run

FAILED = common_pb2.TASK_STATUS_FAILED
TOO_LARGE = common_pb2.FAILURE_CAUSE_RESULT_TOO_LARGE


def test_a_result_over_the_limit_fails_and_the_process_serves_on() -> None:
    def huge() -> bytes:
        return b"x" * 70_000_000

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(os.getpid))
            pid = completed_value(await rec.next())
            pool.submit(make_job(huge))
            outcome = await rec.next()
            assert (outcome.status, outcome.cause) == (FAILED, TOO_LARGE)
            assert "70000" in outcome.message
            assert "16777216 bytes" in outcome.message
            error = pickle.loads(outcome.result)
            assert isinstance(error, ValueError)
            assert str(error) == outcome.message
            pool.submit(make_job(os.getpid))
            assert completed_value(await rec.next()) == pid

    run(scenario)


def test_the_result_limit_is_a_keyword() -> None:
    async def scenario(rec: Recorder) -> None:
        async with rec.pool(max_result_bytes=1000) as pool:
            pool.submit(make_job(bytes, 2000))
            outcome = await rec.next()
            assert outcome.cause == TOO_LARGE
            assert "over the limit of 1000 bytes" in outcome.message
            pool.submit(make_job(bytes, 10))
            assert completed_value(await rec.next()) == bytes(10)

    run(scenario)


def test_an_exception_over_the_limit_is_replaced() -> None:
    def raise_huge() -> None:
        raise ValueError("y" * 5000)

    async def scenario(rec: Recorder) -> None:
        async with rec.pool(max_result_bytes=1000) as pool:
            pool.submit(make_job(raise_huge))
            outcome = await rec.next()
            assert outcome.cause == common_pb2.FAILURE_CAUSE_RAISED
            assert len(outcome.result) <= 1000
            assert len(outcome.traceback) <= 1000
            assert type(dill.loads(outcome.result)) is RuntimeError

    run(scenario)


def test_output_is_captured_per_task() -> None:
    def hello() -> None:
        print("hello")

    def both() -> int:
        print("out")
        print("err", file=sys.stderr)
        return 7

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(hello))
            outcome = await rec.next()
            completed_value(outcome)
            assert outcome.output == "hello\n"
            pool.submit(make_job(both))
            outcome = await rec.next()
            assert completed_value(outcome) == 7
            assert sorted(outcome.output.splitlines()) == ["err", "out"]
            pool.submit(make_job(abs, 1))
            assert (await rec.next()).output == ""

    run(scenario)


def test_output_comes_back_with_failures() -> None:
    def print_and_raise() -> None:
        print("about to fail")
        raise KeyError("k")

    def print_and_die() -> None:
        print("last words", flush=True)
        os.write(2, b"raw\n")
        os._exit(1)

    def print_and_hang() -> None:
        print("waiting", flush=True)
        time.sleep(300)

    async def scenario(rec: Recorder) -> None:
        async with rec.pool() as pool:
            pool.submit(make_job(print_and_raise))
            outcome = await rec.next()
            assert outcome.cause == common_pb2.FAILURE_CAUSE_RAISED
            assert outcome.output == "about to fail\n"
            pool.submit(make_job(print_and_die))
            outcome = await rec.next()
            assert outcome.cause == common_pb2.FAILURE_CAUSE_PROCESS_DIED
            assert outcome.output == "last words\nraw\n"
            await rec.replacement_ready()
            pool.submit(make_job(print_and_hang, timeout=1.0))
            outcome = await rec.next()
            assert outcome.cause == common_pb2.FAILURE_CAUSE_TIMEOUT
            assert outcome.output == "waiting\n"

    run(scenario)


@pytest.mark.parametrize("limit", [64 * 1024, 10])
def test_output_is_bounded_and_the_pool_stays_healthy(limit: int) -> None:
    def flood() -> int:
        chunk = "x" * 1_000_000
        for _ in range(50):
            sys.stdout.write(chunk)
        return 1

    def hello() -> None:
        print("hello")

    async def scenario(rec: Recorder) -> None:
        options = {} if limit == 64 * 1024 else {"max_output_bytes": limit}
        async with rec.pool(**options) as pool:
            pool.submit(make_job(flood))
            outcome = await rec.next()
            assert completed_value(outcome) == 1
            kept, _, marker = outcome.output.partition("\n[output truncated")
            assert kept == "x" * limit
            assert len(marker) < 100
            assert f"{50_000_000 - limit} more bytes" in marker
            pool.submit(make_job(hello))
            assert (await rec.next()).output == "hello\n"

    run(scenario)


def test_invalid_limits() -> None:
    with pytest.raises(ValueError, match="max_result_bytes"):
        ProcessPool(1, print, max_result_bytes=0)
    with pytest.raises(ValueError, match="max_output_bytes"):
        ProcessPool(1, print, max_output_bytes=-1)
