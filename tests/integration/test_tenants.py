"""Tenants and API keys over real gRPC: another tenant's ids answer exactly as unknown ones, a
call without a valid key is UNAUTHENTICATED, a revoked key stops working without a restart."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dill
import grpc
import pytest
from faas.v1 import gateway_pb2, gateway_pb2_grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from services.common.enrollment import TokenFile
from services.common.errors import error_reason
from services.launcher import Platform, PlatformConfig
from tests.integration.conftest import PlatformFactory
from tests.integration.fuzz_support import StoredRecords
from tests.support import wait_until

Metadata = tuple[tuple[str, str], ...]


def double(x: int) -> int:
    return x * 2


class Keyed:
    """A platform whose gateway takes the API keys of ``tokens``: alice (tenant a), bob (b)."""

    def __init__(self, platform: Platform, tokens: TokenFile) -> None:
        self.platform = platform
        self.tokens = tokens
        self.alice = _metadata(tokens.issue("alice", "client", tenant="a"))
        self.bob = _metadata(tokens.issue("bob", "client", tenant="b"))
        self.channel = grpc.insecure_channel(platform.gateway_target)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self.channel)


def _metadata(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    root = tmp_path_factory.mktemp("keyed")
    tokens = TokenFile(root / "api-keys")
    tokens.issue("placeholder", "client", tenant="nobody")  # the file exists before the start
    platform = Platform(
        PlatformConfig(
            worker_processes=2,
            gateway_port=0,
            dispatcher_port=0,
            rest_port=0,
            data_dir=root / "data",
            log_dir=root / "logs",
            enroll=False,
            extra_env={"FAAS_API_KEYS_FILE": str(tokens.path)},
        )
    )
    platform.start()
    keyed = Keyed(platform, tokens)
    yield keyed
    keyed.channel.close()
    platform.stop()


def _register(stub: gateway_pb2_grpc.GatewayServiceStub, metadata: Metadata) -> str:
    request = gateway_pb2.RegisterFunctionRequest(name="double", payload=dill.dumps(double))
    return str(stub.RegisterFunction(request, metadata=metadata, timeout=10).function_id)


def _execute(
    stub: gateway_pb2_grpc.GatewayServiceStub,
    metadata: Metadata,
    function_id: str,
    x: int,
    request_id: str = "",
) -> str:
    request = gateway_pb2.ExecuteFunctionRequest(
        function_id=function_id, payload=dill.dumps(((x,), {})), request_id=request_id
    )
    return str(stub.ExecuteFunction(request, metadata=metadata, timeout=10).task_id)


def _result(stub: gateway_pb2_grpc.GatewayServiceStub, metadata: Metadata, task_id: str) -> Any:
    request = gateway_pb2.GetResultRequest(task_id=task_id)
    request.wait.FromSeconds(30)
    task = stub.GetResult(request, metadata=metadata, timeout=40).task
    return dill.loads(task.result)


def _refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        result = call()
        if hasattr(result, "__next__"):  # a response stream fails at its first message
            next(result)  # type: ignore[call-overload]
    return refused.value


def _shape(error: grpc.RpcError, some_id: str) -> tuple[object, ...]:
    """Everything a caller learns from a failed call, with ``some_id`` replaced by ``<id>``."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "the error carries a google.rpc.Status"
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        assert detail.Unpack(info)
        infos.append(
            (
                info.reason,
                info.domain,
                sorted((k, v.replace(some_id, "<id>")) for k, v in info.metadata.items()),
            )
        )
    trailing = sorted(key for key, _ in error.trailing_metadata() or ())  # type: ignore[attr-defined]
    return (
        error.code(),  # type: ignore[attr-defined]
        error.details().replace(some_id, "<id>"),  # type: ignore[attr-defined]
        status.message.replace(some_id, "<id>"),
        infos,
        trailing,
    )


def test_another_tenants_ids_answer_exactly_as_unknown_ids(keyed: Keyed) -> None:
    stub, alice, bob = keyed.stub, keyed.alice, keyed.bob
    function_id = _register(stub, alice)
    task_id = _execute(stub, alice, function_id, 21)
    assert _result(stub, alice, task_id) == 42
    unknown_task, unknown_function = str(uuid.uuid4()), str(uuid.uuid4())

    def wait(task: str) -> gateway_pb2.GetResultRequest:
        request = gateway_pb2.GetResultRequest(task_id=task)
        request.wait.FromSeconds(1)
        return request

    task_calls: dict[str, Callable[[str], object]] = {
        "GetStatus": lambda t: stub.GetStatus(
            gateway_pb2.GetStatusRequest(task_id=t), metadata=bob, timeout=10
        ),
        "GetResult": lambda t: stub.GetResult(wait(t), metadata=bob, timeout=10),
        "WatchTask": lambda t: stub.WatchTask(
            gateway_pb2.WatchTaskRequest(task_id=t), metadata=bob, timeout=10
        ),
    }
    function_calls: dict[str, Callable[[str], object]] = {
        "GetFunction": lambda f: stub.GetFunction(
            gateway_pb2.GetFunctionRequest(function_id=f), metadata=bob, timeout=10
        ),
        "ExecuteFunction": lambda f: _execute(stub, bob, f, 1),
        "ExecuteBatch": lambda f: stub.ExecuteBatch(
            gateway_pb2.ExecuteBatchRequest(
                function_id=f, payloads=[dill.dumps(((1,), {}))] * 2, request_id="batch"
            ),
            metadata=bob,
            timeout=10,
        ),
    }
    records = StoredRecords(keyed.platform)
    try:
        before = records.now()
        for name, call in task_calls.items():
            theirs = _refusal(lambda c=call: c(task_id))  # type: ignore[misc]
            unknown = _refusal(lambda c=call: c(unknown_task))  # type: ignore[misc]
            assert theirs.code() == grpc.StatusCode.NOT_FOUND, name  # type: ignore[attr-defined]
            assert error_reason(theirs) == "TASK_NOT_FOUND", name
            assert _shape(theirs, task_id) == _shape(unknown, unknown_task), name
        for name, call in function_calls.items():
            theirs = _refusal(lambda c=call: c(function_id))  # type: ignore[misc]
            unknown = _refusal(lambda c=call: c(unknown_function))  # type: ignore[misc]
            assert theirs.code() == grpc.StatusCode.NOT_FOUND, name  # type: ignore[attr-defined]
            assert error_reason(theirs) == "FUNCTION_NOT_FOUND", name
            assert _shape(theirs, function_id) == _shape(unknown, unknown_function), name
        assert records.now() == before  # bob's executions of alice's function stored nothing
    finally:
        records.close()
    # Alice still reads all of it.
    status = stub.GetStatus(gateway_pb2.GetStatusRequest(task_id=task_id), metadata=alice)
    assert status.status != 0
    info = stub.GetFunction(gateway_pb2.GetFunctionRequest(function_id=function_id), metadata=alice)
    assert info.function.function_id == function_id


def test_watch_tasks_answers_another_tenants_ids_as_unknown(keyed: Keyed) -> None:
    stub, alice, bob = keyed.stub, keyed.alice, keyed.bob
    function_id = _register(stub, alice)
    theirs = _execute(stub, alice, function_id, 1)
    mine_function = _register(stub, bob)
    mine = _execute(stub, bob, mine_function, 2)
    assert _result(stub, alice, theirs) == 2  # terminal before bob watches: carried by no event
    requests: queue.Queue[gateway_pb2.WatchTasksRequest | None] = queue.Queue()
    requests.put(gateway_pb2.WatchTasksRequest(task_ids=[theirs, mine]))
    requests.put(None)
    responses = stub.WatchTasks(iter(requests.get, None), metadata=bob, timeout=60)
    seen, unknown = set(), set()
    for response in responses:
        seen |= {t.task_id for t in response.tasks}
        unknown |= set(response.unknown_task_ids)
        if any(t.task_id == theirs for t in response.tasks):
            pytest.fail("bob was sent the state of alice's task")
    assert unknown == {theirs}
    assert mine in seen


def test_a_call_without_a_valid_key_is_unauthenticated(keyed: Keyed) -> None:
    stub = keyed.stub
    function_id = _register(stub, keyed.alice)
    wrong = _metadata("faas_alice." + "x" * 43)
    junk = (("authorization", "Bearer nonsense"),)
    calls: dict[str, Callable[[Metadata], object]] = {
        "RegisterFunction": lambda m: _register(stub, m),
        "GetFunction": lambda m: stub.GetFunction(
            gateway_pb2.GetFunctionRequest(function_id=function_id), metadata=m, timeout=10
        ),
        "ExecuteFunction": lambda m: _execute(stub, m, function_id, 1),
        "ExecuteBatch": lambda m: stub.ExecuteBatch(
            gateway_pb2.ExecuteBatchRequest(function_id=function_id, payloads=[b"x"]),
            metadata=m,
            timeout=10,
        ),
        "GetStatus": lambda m: stub.GetStatus(
            gateway_pb2.GetStatusRequest(task_id="t"), metadata=m, timeout=10
        ),
        "GetResult": lambda m: stub.GetResult(
            gateway_pb2.GetResultRequest(task_id="t"), metadata=m, timeout=10
        ),
        "WatchTask": lambda m: stub.WatchTask(
            gateway_pb2.WatchTaskRequest(task_id="t"), metadata=m, timeout=10
        ),
        "WatchTasks": lambda m: stub.WatchTasks(
            iter([gateway_pb2.WatchTasksRequest(task_ids=["t"])]), metadata=m, timeout=10
        ),
        "ListWorkers": lambda m: stub.ListWorkers(
            gateway_pb2.ListWorkersRequest(), metadata=m, timeout=10
        ),
    }
    records = StoredRecords(keyed.platform)
    try:
        before = records.now()
        for name, call in calls.items():
            for metadata, reason in (((), "API_KEY_MISSING"), (wrong, "API_KEY_INVALID")):
                error = _refusal(lambda c=call, m=metadata: c(m))  # type: ignore[misc]
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED, name  # type: ignore[attr-defined]
                assert error_reason(error) == reason, name
            error = _refusal(lambda c=call: c(junk))  # type: ignore[misc]
            assert error_reason(error) == "API_KEY_INVALID", name
        assert records.now() == before
    finally:
        records.close()
    missing = _refusal(lambda: _register(stub, ()))
    assert "authorization: Bearer" in missing.details()  # type: ignore[attr-defined]
    # Health stays open.
    health = health_pb2_grpc.HealthStub(keyed.channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_revoked_key_stops_working_without_a_restart(keyed: Keyed) -> None:
    carol = _metadata(keyed.tokens.issue("carol", "client", tenant="c"))
    function_id = _register(keyed.stub, carol)
    assert keyed.tokens.revoke("carol")
    revoked_at = time.monotonic()

    def refused() -> bool:
        try:
            _register(keyed.stub, carol)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            assert error_reason(exc) == "API_KEY_INVALID"
            return True
        return False

    wait_until(refused, 10, "the revoked key to be refused")
    assert time.monotonic() - revoked_at < 10
    # The tenant's records stay; a new key of the same tenant reaches them.
    again = _metadata(keyed.tokens.issue("carol-2", "client", tenant="c"))
    wait_until(lambda: _reaches(keyed, again, function_id), 10, "the new key to be taken")


def test_a_watch_stream_opened_before_a_revocation_reads_no_more(keyed: Keyed) -> None:
    dave = _metadata(keyed.tokens.issue("dave", "client", tenant="d"))
    function_id = _register(keyed.stub, dave)
    first = _execute(keyed.stub, dave, function_id, 1)
    later = _execute(keyed.stub, dave, function_id, 2)
    assert _result(keyed.stub, dave, later) == 4
    requests: queue.Queue[gateway_pb2.WatchTasksRequest | None] = queue.Queue()
    requests.put(gateway_pb2.WatchTasksRequest(task_ids=[first]))
    responses = keyed.stub.WatchTasks(iter(requests.get, None), metadata=dave, timeout=60)
    seen = {t.task_id for t in next(responses).tasks}
    assert first in seen
    assert keyed.tokens.revoke("dave")
    time.sleep(1.0)  # past the gateway's look at the keys file (every 0.5 s)
    requests.put(gateway_pb2.WatchTasksRequest(task_ids=[later]))  # a finished task of dave's
    with pytest.raises(grpc.RpcError) as refused:
        for response in responses:
            assert later not in {t.task_id for t in response.tasks}, "a revoked key read a task"
    requests.put(None)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]


def _reaches(keyed: Keyed, metadata: Metadata, function_id: str) -> bool:
    try:
        keyed.stub.GetFunction(
            gateway_pb2.GetFunctionRequest(function_id=function_id), metadata=metadata, timeout=10
        )
    except grpc.RpcError:
        return False
    return True


def test_a_request_id_is_each_tenants_own(keyed: Keyed) -> None:
    stub, alice, bob = keyed.stub, keyed.alice, keyed.bob
    request_id = f"same-{uuid.uuid4()}"
    theirs = _execute(stub, alice, _register(stub, alice), 1, request_id)
    mine = _execute(stub, bob, _register(stub, bob), 2, request_id)
    assert mine != theirs  # not alice's task, and no REQUEST_ID_REUSED either
    assert _result(stub, bob, mine) == 4
    assert _result(stub, alice, theirs) == 2
    function_id = _register(stub, bob)
    assert _execute(stub, bob, function_id, 3, "again") == _execute(
        stub, bob, function_id, 3, "again"
    )


def test_an_open_gateway_needs_no_key(make_platform: PlatformFactory, tmp_path: Path) -> None:
    platform = make_platform(workers=1, worker_processes=1)
    with grpc.insecure_channel(platform.gateway_target) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        function_id = _register(stub, ())
        task_id = _execute(stub, (), function_id, 5, "open")
        assert _result(stub, (), task_id) == 10
        # A key sent to an open gateway is ignored: the call is the default tenant's.
        assert _result(stub, _metadata("faas_whoever." + "x" * 43), task_id) == 10
    assert "runs open" in (tmp_path / "logs0" / "gateway.log").read_text()
