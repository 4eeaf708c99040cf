"""The Python SDK (FaaSClient, FaaSExecutor) against real gateway, dispatcher and workers."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
import pytest
from faas import (
    FaaSClient,
    FaaSExecutor,
    FaaSTimeout,
    FunctionNotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TaskFailed,
    TaskNotFound,
    TaskStatus,
)

from services.launcher import Platform
from tests.integration.conftest import PlatformFactory
from tests.support import wait_until


class CallLog:
    """Counts the RPCs a client makes, by method name, and the tasks its submit calls carry,
    through client interceptors; with ``gate`` set, submit calls wait until it opens."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.submitted: list[int] = []  # tasks per ExecuteFunction / ExecuteBatch
        self.gate = gate
        log = self

        class Unary(grpc.aio.UnaryUnaryClientInterceptor):
            async def intercept_unary_unary(
                self,
                continuation: Callable[[Any, Any], Awaitable[Any]],
                details: grpc.aio.ClientCallDetails,
                request: Any,
            ) -> Any:
                log.record(details)
                await log.submit(details, request)
                return await continuation(details, request)

        class Stream(grpc.aio.UnaryStreamClientInterceptor):
            async def intercept_unary_stream(
                self,
                continuation: Callable[[Any, Any], Awaitable[Any]],
                details: grpc.aio.ClientCallDetails,
                request: Any,
            ) -> Any:
                log.record(details)
                return await continuation(details, request)

        class Bidi(grpc.aio.StreamStreamClientInterceptor):
            async def intercept_stream_stream(
                self,
                continuation: Callable[[Any, Any], Awaitable[Any]],
                details: grpc.aio.ClientCallDetails,
                request_iterator: Any,
            ) -> Any:
                log.record(details)
                return await continuation(details, request_iterator)

        self.interceptors = [Unary(), Stream(), Bidi()]

    def record(self, details: grpc.aio.ClientCallDetails) -> None:
        self.calls[_method(details)] += 1

    async def submit(self, details: grpc.aio.ClientCallDetails, request: Any) -> None:
        method = _method(details)
        if method not in ("ExecuteFunction", "ExecuteBatch"):
            return
        self.submitted.append(len(request.payloads) if method == "ExecuteBatch" else 1)
        if self.gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 60)


def _method(details: grpc.aio.ClientCallDetails) -> str:
    method = details.method
    name = method.decode() if isinstance(method, bytes) else str(method)
    return name.rsplit("/", 1)[-1]


@pytest.fixture
def client(shared_platform: Platform) -> Iterator[FaaSClient]:
    with FaaSClient(shared_platform.gateway_target) as faas_client:
        yield faas_client


def test_register_submit_result(client: FaaSClient) -> None:
    def power(base: int, exponent: int = 2) -> int:
        return int(base**exponent)

    function_id = client.register(power)
    future = client.submit(function_id, 3, exponent=4)
    assert future.result(timeout=60) == 81
    assert future.status is TaskStatus.COMPLETED
    assert future.info is not None and future.info.attempts == 1
    assert client.status(future.task_id) is TaskStatus.COMPLETED
    assert client.result(future.task_id, timeout=30) == 81

    task_id = client.execute(function_id, (5,))
    assert client.result(task_id, timeout=60) == 25
    info = client.task(task_id)
    assert info.status is TaskStatus.COMPLETED and info.finished_time is not None


def test_function_exception_is_reraised_with_its_type_and_message(client: FaaSClient) -> None:
    class QuotaExceeded(Exception):
        pass

    def check(limit: int) -> None:
        if limit > 10:
            raise QuotaExceeded(f"limit {limit} is over 10")
        raise KeyError(limit)

    function_id = client.register(check)
    with pytest.raises(Exception) as caught:
        client.submit(function_id, 11).result(timeout=60)
    assert type(caught.value).__name__ == "QuotaExceeded"
    assert str(caught.value) == "limit 11 is over 10"
    assert "Remote traceback" in caught.value.__notes__[0]
    assert "QuotaExceeded" in caught.value.__notes__[0]

    task_id = client.execute(function_id, (3,))
    with pytest.raises(KeyError) as key_error:
        client.result(task_id, timeout=60)
    assert key_error.value.args == (3,)


def test_other_failures_raise_task_failed_with_cause(client: FaaSClient) -> None:
    def nap(seconds: float) -> float:
        import time

        time.sleep(seconds)
        return seconds

    function_id = client.register(nap, timeout=0.5)
    with pytest.raises(TaskFailed) as caught:
        client.submit(function_id, 30).result(timeout=60)
    assert caught.value.cause == "TIMEOUT"
    assert "time limit" in caught.value.task_message
    assert isinstance(caught.value.__cause__, TimeoutError)


def test_unknown_ids_raise_not_found(client: FaaSClient) -> None:
    with pytest.raises(TaskNotFound) as caught:
        client.status("no-such-task")
    assert caught.value.reason == "TASK_NOT_FOUND"
    assert isinstance(caught.value, LookupError)
    with pytest.raises(TaskNotFound):
        client.result("no-such-task", timeout=5)
    with pytest.raises(TaskNotFound):
        client.future("no-such-task").result(timeout=30)
    with pytest.raises(FunctionNotFound):
        client.submit("no-such-function", 1).result(timeout=30)  # submit() itself never waits
    with pytest.raises(FunctionNotFound):
        list(client.map("no-such-function", [1, 2]))


def test_payload_over_the_limit_raises_payload_too_large(client: FaaSClient) -> None:
    def size(blob: bytes) -> int:
        return len(blob)

    function_id = client.register(size)
    too_large = client.submit(function_id, b"x" * (17 * 1024 * 1024))
    small = client.submit(function_id, b"x" * 10)  # submitted with it, it is not refused
    with pytest.raises(PayloadTooLarge) as caught:
        too_large.result(timeout=60)
    assert caught.value.reason == "PAYLOAD_TOO_LARGE"
    with pytest.raises(PayloadTooLarge):
        too_large.task_id  # noqa: B018  (no task: reading its id raises the submit's error)
    assert small.result(timeout=60) == 10


def test_result_timeout_raises_faas_timeout(client: FaaSClient) -> None:
    def nap(seconds: float) -> float:
        import time

        time.sleep(seconds)
        return seconds

    task_id = client.execute(client.register(nap), (2,))
    started = time.monotonic()
    with pytest.raises(FaaSTimeout) as caught:
        client.result(task_id, timeout=0.3)
    assert time.monotonic() - started < 5
    assert isinstance(caught.value, TimeoutError)
    assert client.result(task_id, timeout=60) == 2


def test_futures_resolve_from_one_watch_stream_without_polling(shared_platform: Platform) -> None:
    def nap(seconds: float) -> float:
        import time

        time.sleep(seconds)
        return seconds

    log = CallLog()
    with FaaSClient(shared_platform.gateway_target, interceptors=log.interceptors) as client:
        function_id = client.register(nap)
        futures = [client.submit(function_id, 0.3) for _ in range(4)]
        running = threading.Event()
        futures[0].add_done_callback(lambda _: running.set())
        done, _ = concurrent.futures.wait(futures, timeout=60)
        assert len(done) == 4 and running.is_set()
        assert [f.result() for f in futures] == [0.3] * 4
        assert list(client.map(function_id, [0.1, 0.0, 0.2])) == [0.1, 0.0, 0.2]
    # Four submits in at most four calls, and the map's batch; seven futures, one stream.
    assert sum(log.submitted) == 7 and len(log.submitted) <= 5
    assert log.calls["WatchTasks"] == 1
    assert log.calls["WatchTask"] == log.calls["GetResult"] == log.calls["GetStatus"] == 0


def test_submit_returns_at_once_and_submits_coalesce(shared_platform: Platform) -> None:
    gate = threading.Event()  # holds every submit call until it opens
    log = CallLog(gate)
    with FaaSClient(shared_platform.gateway_target, interceptors=log.interceptors) as client:
        function_id = client.register(abs)
        futures = [client.submit(function_id, -i) for i in range(300)]
        assert not any(f.submitted or f.done() for f in futures)  # none waited for the gateway
        gate.set()
        done = [f.result(timeout=60) for f in concurrent.futures.as_completed(futures, 60)]
        assert sorted(done) == list(range(300))
        assert [f.result() for f in futures] == list(range(300))
        assert len({f.task_id for f in futures}) == 300
        # The first call went alone; the rest waited behind the held calls and went together.
        assert sum(log.submitted) == 300 and len(log.submitted) <= 10
        assert log.calls["WatchTasks"] == 1
        # A second wave on the same stream, waited for with concurrent.futures.wait.
        more = [client.submit(function_id, i) for i in range(50)]
        finished, pending = concurrent.futures.wait(more, timeout=60)
        assert not pending and sorted(f.result() for f in finished) == list(range(50))
    assert log.calls["WatchTasks"] == 1 and log.calls["WatchTask"] == 0


def test_watch_yields_each_status_until_terminal(client: FaaSClient) -> None:
    def nap(seconds: float) -> str:
        import time

        time.sleep(seconds)
        return "rested"

    task_id = client.execute(client.register(nap), (0.5,))
    statuses = [info.status for info in client.watch(task_id)]
    assert statuses[-1] is TaskStatus.COMPLETED
    assert len(set(statuses)) == len(statuses)


def test_executor_registers_once_and_map_keeps_order(shared_platform: Platform) -> None:
    def slower_first(i: int) -> int:
        import time

        time.sleep(0.05 * (8 - i))
        return i * 10

    log = CallLog()
    client = FaaSClient(shared_platform.gateway_target, interceptors=log.interceptors)
    with FaaSExecutor(client=client) as executor:
        assert list(executor.map(slower_first, range(8), timeout=60)) == [i * 10 for i in range(8)]
        futures = [executor.submit(slower_first, i) for i in (7, 6)]
        assert [f.result(timeout=60) for f in concurrent.futures.as_completed(futures)] in (
            [70, 60],
            [60, 70],
        )
    assert log.calls["RegisterFunction"] == 1
    assert log.submitted[0] == 8 and sum(log.submitted) == 10  # map: one ExecuteBatch
    assert log.calls["GetResult"] == log.calls["GetStatus"] == log.calls["WatchTask"] == 0
    client.close()


def test_executor_shutdown_waits_for_futures(shared_platform: Platform) -> None:
    def nap(seconds: float) -> float:
        import time

        time.sleep(seconds)
        return seconds

    executor = FaaSExecutor(shared_platform.gateway_target)
    future = executor.submit(nap, 1.0)
    executor.shutdown(wait=True)
    assert future.done() and future.result() == 1.0
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(nap, 0)


@pytest.mark.fault
def test_gateway_down_raises_unavailable_and_the_client_recovers(
    make_platform: PlatformFactory,
) -> None:
    platform = make_platform()
    # Six retries from 0.05 s wait longer in all than the channel's 1 s reconnect backoff.
    with FaaSClient(platform.gateway_target, retries=6, backoff=0.05) as client:
        function_id = client.register(abs)
        platform.gateway.stop()
        started = time.monotonic()
        future = client.submit(function_id, -1)
        with pytest.raises(ServiceUnavailable) as caught:
            future.result(timeout=60)
        assert "after 7 attempts" in str(caught.value)
        assert time.monotonic() - started < 10
        platform.gateway.start()
        assert client.submit(function_id, -4).result(timeout=60) == 4


@pytest.mark.fault
def test_calls_retry_until_the_gateway_comes_back(make_platform: PlatformFactory) -> None:
    platform = make_platform()
    platform.gateway.stop()
    restarter = threading.Thread(target=platform.gateway.start)
    with FaaSClient(platform.gateway_target, retries=10, backoff=0.1, max_backoff=1.0) as client:
        restarter.start()
        try:
            function_id = client.register(abs)  # retried while the gateway starts
        finally:
            restarter.join()
        assert list(client.map(function_id, [-1, -2])) == [1, 2]


@pytest.mark.fault
def test_future_survives_a_gateway_restart(make_platform: PlatformFactory) -> None:
    def nap(seconds: float) -> str:
        import time

        time.sleep(seconds)
        return "done"

    platform = make_platform()
    log = CallLog()
    with FaaSClient(
        platform.gateway_target, interceptors=log.interceptors, backoff=0.2, max_backoff=1.0
    ) as client:
        future = client.submit(client.register(nap), 4)
        wait_until(future.running, 30, "the task to start")
        platform.gateway.kill()
        platform.gateway.start()
        assert future.result(timeout=60) == "done"
    assert log.calls["WatchTasks"] >= 2  # the stream was re-opened, with the task's id
