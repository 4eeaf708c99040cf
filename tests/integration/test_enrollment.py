"""Only enrolled workers and gateways reach the dispatcher (issue 12): with a tokens file, a
connection needs a token issued for its role, a worker is the id its token names (not what its
hello claims), and a revoked token's stream ends and cannot come back."""

from __future__ import annotations

import queue
import secrets
from pathlib import Path

import dill
import grpc
import pytest
from faas.v1 import common_pb2, dispatcher_pb2, dispatcher_pb2_grpc

from services.common.enrollment import TokenFile
from tests.integration.conftest import PlatformFactory
from tests.integration.test_fake_worker import FakeWorker
from tests.support import GrpcClient, wait_until


def square(x: int) -> int:
    return x * x


def _refusal(worker: FakeWorker) -> grpc.RpcError:
    """The error that ended ``worker``'s stream (it must end, and with an error)."""
    while True:
        item = worker.responses.get(timeout=20)
        if isinstance(item, grpc.RpcError):
            return item
        assert item is None or item.WhichOneof("kind") == "heartbeat", item
        if item is None:
            raise AssertionError("the stream ended without an error")


@pytest.fixture
def enrolled(make_platform: PlatformFactory, tmp_path: Path) -> tuple[GrpcClient, TokenFile, str]:
    tokens = TokenFile(tmp_path / "tokens")
    gateway_token = tokens.issue("gateway-1", "gateway")
    platform = make_platform(
        workers=0,
        extra_env={
            "FAAS_TOKENS_FILE": str(tokens.path),
            "FAAS_DISPATCHER_TOKEN": gateway_token,
        },
    )
    return GrpcClient(platform), tokens, platform.dispatcher_target


@pytest.mark.fault
def test_a_worker_without_a_valid_token_is_refused(
    enrolled: tuple[GrpcClient, TokenFile, str],
) -> None:
    client, tokens, target = enrolled
    gateway_token = tokens.issue("gateway-2", "gateway")
    forged = f"faas_w1.{secrets.token_urlsafe(32)}"
    for token in (None, "not-a-token", forged, gateway_token):  # none, junk, forged, wrong role
        worker = FakeWorker(target, "w1", token=token)
        error = _refusal(worker)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (token, error)
        assert "enrolled workers only" in error.details()
        worker.close()
    assert client.workers() == {}


def test_only_an_enrolled_gateway_may_list_the_workers(
    enrolled: tuple[GrpcClient, TokenFile, str],
) -> None:
    client, tokens, target = enrolled
    worker_token = tokens.issue("w-lister", "worker")
    gateway_token = tokens.issue("gateway-lister", "gateway")
    with grpc.insecure_channel(target) as channel:
        stub = dispatcher_pb2_grpc.DispatcherServiceStub(channel)
        request = dispatcher_pb2.ListConnectedWorkersRequest()
        for token in (None, worker_token):
            metadata = (("authorization", f"Bearer {token}"),) if token else None
            with pytest.raises(grpc.RpcError) as refused:
                stub.ListConnectedWorkers(request, metadata=metadata, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        reply = stub.ListConnectedWorkers(
            request, metadata=(("authorization", f"Bearer {gateway_token}"),), timeout=10
        )
        assert reply.mode
    assert client.workers() == {}  # the gateway asks with its own token


@pytest.mark.fault
def test_an_enrolled_worker_is_the_id_its_token_names_and_gets_work(
    enrolled: tuple[GrpcClient, TokenFile, str],
) -> None:
    client, tokens, target = enrolled
    token = tokens.issue("w-real", "worker")
    impostor = FakeWorker(target, "someone-else", token=token)
    error = _refusal(impostor)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    impostor.close()

    worker = FakeWorker(target, "", token=token)  # no id of its own: the token's
    try:
        worker.next("welcome")
        wait_until(lambda: list(client.workers()) == ["w-real"], 10, "the worker by its token")
        (task_id,) = client.submit(client.register(square), [(7,)])  # the gateway is enrolled
        assignment = worker.next("assignments").assignments.assignments[0]
        assert assignment.task_id == task_id
        worker.start(assignment)
        worker.report(assignment, status=common_pb2.TASK_STATUS_COMPLETED, result=dill.dumps(49))
        (state,) = client.wait_all([task_id], timeout=30)
        assert state.status == common_pb2.TASK_STATUS_COMPLETED and state.worker_id == "w-real"
    finally:
        worker.close()


@pytest.mark.fault
def test_a_revoked_token_ends_its_stream_and_cannot_reconnect(
    enrolled: tuple[GrpcClient, TokenFile, str],
) -> None:
    client, tokens, target = enrolled
    token = tokens.issue("w-gone", "worker")
    worker = FakeWorker(target, "w-gone", token=token)
    worker.next("welcome")
    wait_until(lambda: "w-gone" in client.workers(), 10, "connected")
    assert tokens.revoke("w-gone")
    ended = worker.responses
    while True:  # the dispatcher closes the stream (within about a second)
        item = ended.get(timeout=20)
        if item is None or isinstance(item, grpc.RpcError):
            break
    worker.close()
    wait_until(lambda: "w-gone" not in client.workers(), 10, "gone from the workers")
    again = FakeWorker(target, "w-gone", token=token)
    assert _refusal(again).code() == grpc.StatusCode.UNAUTHENTICATED
    again.close()
    with pytest.raises(queue.Empty):
        again.responses.get(timeout=0.5)


@pytest.mark.fault
def test_the_launcher_enrolls_its_own_gateway_and_workers_and_no_one_else(
    make_platform: PlatformFactory,
) -> None:
    """What `make run` starts: the dispatcher admits its gateway and workers by their tokens
    (tasks run), and a worker the launcher did not enroll is refused."""
    platform = make_platform(enroll=True)
    client = GrpcClient(platform)
    try:
        assert platform.tokens is not None
        enrolled = {c.id: c.role for c in platform.tokens.credentials()}
        (worker_id,) = client.workers()
        assert enrolled == {"gateway": "gateway", worker_id: "worker"}
        states = client.wait_all(client.submit(client.register(square), [(3,), (4,)]))
        assert [dill.loads(s.result) for s in states] == [9, 16]
        stranger = FakeWorker(platform.dispatcher_target, "stranger")
        assert _refusal(stranger).code() == grpc.StatusCode.UNAUTHENTICATED
        stranger.close()
        assert list(client.workers()) == [worker_id]
    finally:
        client.channel.close()
