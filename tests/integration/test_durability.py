"""Fault injection: Redis, dispatcher, gateway and REST shim restarts lose nothing (issue 4).

Each test submits tasks, breaks one component for real (SIGKILL or SIGTERM), restarts it, and
counts: every task acknowledged with an id ends COMPLETED with the right result.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import dill
import grpc
import httpx
import pytest
from faas.v1 import common_pb2, gateway_pb2

from services.launcher import Platform
from tests.integration.conftest import PlatformFactory
from tests.support import GrpcClient, RestClient, deserialize, serialize, wait_until

pytestmark = pytest.mark.fault


def square(x: int) -> int:
    import time

    time.sleep(0.02)
    return x * x


@pytest.fixture
def clients() -> Iterator[Callable[[Platform], tuple[GrpcClient, RestClient]]]:
    made: list[tuple[GrpcClient, RestClient]] = []

    def make(platform: Platform) -> tuple[GrpcClient, RestClient]:
        made.append((GrpcClient(platform), RestClient(platform.rest_url)))
        return made[-1]

    yield make
    for g, r in made:
        g.channel.close()
        r.close()


def _check_all(client: GrpcClient, task_ids: list[str], inputs: list[int]) -> None:
    """Zero lost (every id terminal), zero wrong (every result right)."""
    states = client.wait_all(task_ids, timeout=180)
    wrong = [
        (s.task_id, s.status, s.error.message)
        for s, x in zip(states, inputs, strict=True)
        if s.status != common_pb2.TASK_STATUS_COMPLETED or dill.loads(s.result) != x * x
    ]
    assert not wrong, f"{len(wrong)} of {len(task_ids)} wrong: {wrong[:3]}"


def test_dispatcher_killed_and_restarted(
    make_platform: PlatformFactory, clients: Callable[[Platform], tuple[GrpcClient, RestClient]]
) -> None:
    platform = make_platform(mode="push", workers=1, worker_processes=2)
    client, _ = clients(platform)
    function_id = client.register(square)
    inputs = list(range(150))
    task_ids = client.submit(function_id, [(x,) for x in inputs[:100]])
    wait_until(
        lambda: client.state(task_ids[10]).status == common_pb2.TASK_STATUS_COMPLETED,
        30,
        "progress",
    )
    platform.dispatcher.kill()
    task_ids += client.submit(function_id, [(x,) for x in inputs[100:]])  # while it is down
    platform.dispatcher.start()
    _check_all(client, task_ids, inputs)


def test_local_mode_dispatcher_killed_and_restarted(
    make_platform: PlatformFactory, clients: Callable[[Platform], tuple[GrpcClient, RestClient]]
) -> None:
    platform = make_platform(mode="local", worker_processes=2)
    client, _ = clients(platform)
    inputs = list(range(60))
    task_ids = client.submit(client.register(square), [(x,) for x in inputs])
    wait_until(
        lambda: client.state(task_ids[5]).status == common_pb2.TASK_STATUS_COMPLETED, 30, "progress"
    )
    platform.dispatcher.kill()
    platform.dispatcher.start()
    _check_all(client, task_ids, inputs)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_gateway_and_rest_restarted(
    make_platform: PlatformFactory,
    clients: Callable[[Platform], tuple[GrpcClient, RestClient]],
    sig: int,
) -> None:
    platform = make_platform(mode="push", workers=1, worker_processes=2)
    _, rest = clients(platform)
    function_id = rest.register(square)
    inputs = list(range(40))
    task_ids = [rest.execute(function_id, x) for x in inputs]
    platform.gateway.stop(sig)
    reply = rest.http.get(f"/status/{task_ids[0]}")
    assert reply.status_code == 503 and reply.json()["detail"]
    platform.gateway.start()
    platform.rest.stop(sig)
    platform.rest.start()
    task_ids += [rest.execute(function_id, x) for x in inputs]
    for task_id, x in zip(task_ids, inputs + inputs, strict=True):
        body = rest.wait_result(task_id)
        assert body["status"] == "COMPLETED"
        assert deserialize(body["result"]) == x * x


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_redis_restarted(
    make_platform: PlatformFactory,
    clients: Callable[[Platform], tuple[GrpcClient, RestClient]],
    sig: int,
) -> None:
    # SIGKILL loses nothing acknowledged only with appendfsync always (README: Guarantees).
    platform = make_platform(
        mode="push",
        workers=1,
        worker_processes=2,
        appendfsync="always" if sig == signal.SIGKILL else "everysec",
    )
    client, rest = clients(platform)
    function_id = client.register(square)
    inputs = list(range(200))
    task_ids = client.submit(function_id, [(x,) for x in inputs[:100]])
    assert platform.redis is not None
    platform.redis.stop(sig)

    # While Redis is down: clear errors within a bounded time, and nothing changes.
    started = time.monotonic()
    reply = rest.http.get(f"/status/{task_ids[0]}")
    assert reply.status_code == 503, reply.text
    assert "unavailable" in reply.json()["detail"]
    reply = rest.http.post(
        "/execute_function",
        json={"function_id": str(uuid.uuid4()), "payload": serialize(((1,), {}))},
    )
    assert reply.status_code == 503
    with pytest.raises(grpc.RpcError) as caught:
        client.stub.GetStatus(gateway_pb2.GetStatusRequest(task_id=task_ids[0]), timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 30

    platform.redis.start()
    # Every service carries on by itself; invalid operations still change nothing.
    reply = rest.http.post(
        "/execute_function",
        json={"function_id": str(uuid.uuid4()), "payload": serialize(((1,), {}))},
    )
    assert reply.status_code == 404
    task_ids += client.submit(function_id, [(x,) for x in inputs[100:]])
    _check_all(client, task_ids, inputs)


def test_services_exit_zero_on_sigterm(make_platform: PlatformFactory) -> None:
    platform = make_platform(mode="push", workers=1, worker_processes=1)
    for service in (*platform.workers, platform.rest, platform.gateway, platform.dispatcher):
        started = time.monotonic()
        code = service.stop(signal.SIGTERM, timeout=20)
        assert code == 0, f"{service.name} exited with {code}"
        assert time.monotonic() - started < 15


@pytest.mark.slow
def test_soak_with_a_fault_of_each_kind(
    make_platform: PlatformFactory, clients: Callable[[Platform], tuple[GrpcClient, RestClient]]
) -> None:
    """2,000 tasks while a worker is killed, Redis restarted and the dispatcher restarted."""
    platform = make_platform(mode="push", workers=2, worker_processes=2)
    client, _ = clients(platform)
    function_id = client.register(square)
    inputs = list(range(2000))
    task_ids: list[str] = []
    assert platform.redis is not None
    faults: list[Callable[[], None]] = [
        platform.workers[0].kill,
        platform.redis.restart,
        platform.dispatcher.restart,  # SIGTERM, then start again
    ]
    chunks = [inputs[i : i + 400] for i in range(0, 2000, 400)]
    for index, chunk in enumerate(chunks):
        task_ids += _submit_retrying(client, function_id, chunk)
        if index < len(faults):
            time.sleep(0.5)  # let the chunk get going, so the fault hits work in flight
            faults[index]()
    _check_all(client, task_ids, inputs)
    print(f"soak: {len(task_ids)} submitted, {len(task_ids)} completed with the right result")


def _submit_retrying(client: GrpcClient, function_id: str, chunk: list[int]) -> list[str]:
    """Submits, retrying while a component is restarting (a rejected submit stored nothing)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return client.submit(function_id, [(x,) for x in chunk])
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:  # type: ignore[attr-defined]
                raise
            time.sleep(0.2)


def test_rest_answers_503_not_500_when_gateway_is_gone(make_platform: PlatformFactory) -> None:
    platform = make_platform(mode="push", workers=0)
    platform.gateway.kill()
    with httpx.Client(base_url=platform.rest_url, timeout=30) as http:
        for method, path, body in (
            ("POST", "/register_function", {"name": "x", "payload": serialize(square)}),
            ("GET", f"/status/{uuid.uuid4()}", None),
            ("GET", f"/result/{uuid.uuid4()}", None),
        ):
            reply = http.request(method, path, json=body)
            assert reply.status_code == 503, (path, reply.status_code)
            assert reply.json()["detail"]


def test_gateway_sigterm_ends_long_polls_at_once(
    make_platform: PlatformFactory, clients: Callable[[Platform], tuple[GrpcClient, RestClient]]
) -> None:
    platform = make_platform(mode="push", workers=1, worker_processes=1)
    client, _ = clients(platform)

    def nap() -> None:
        import time

        time.sleep(6)

    (task_id,) = client.submit(client.register(nap), [()])
    answers: list[object] = []

    def long_poll() -> None:
        try:
            answers.append(client.state(task_id, wait=30).status)
        except grpc.RpcError as exc:  # the poll reached the gateway after its shutdown began
            answers.append(exc.code())  # type: ignore[attr-defined]

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.5)  # most likely the long poll is waiting in the gateway by now
    started = time.monotonic()
    assert platform.gateway.stop(signal.SIGTERM, timeout=20) == 0
    poller.join(10)
    assert time.monotonic() - started < 4
    assert answers and answers[0] in (
        common_pb2.TASK_STATUS_QUEUED,
        common_pb2.TASK_STATUS_RUNNING,
        grpc.StatusCode.UNAVAILABLE,
    )


def test_a_hung_redis_is_a_bounded_503_not_a_hang(
    make_platform: PlatformFactory, clients: Callable[[Platform], tuple[GrpcClient, RestClient]]
) -> None:
    platform = make_platform(mode="push", workers=1, worker_processes=1)
    client, rest = clients(platform)
    function_id = client.register(square)
    assert platform.redis is not None and platform.redis.process is not None
    redis_pid = platform.redis.process.pid
    os.kill(redis_pid, signal.SIGSTOP)  # Redis accepts connections but never answers
    try:
        started = time.monotonic()
        reply = rest.http.get(f"/status/{uuid.uuid4()}")
        elapsed = time.monotonic() - started
        assert reply.status_code == 503, reply.text
        assert reply.json()["detail"]
        print(f"hung redis: 503 after {elapsed:.2f}s")
        assert elapsed < 8, elapsed
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    task_ids = client.submit(function_id, [(x,) for x in range(10)])
    _check_all(client, task_ids, list(range(10)))
