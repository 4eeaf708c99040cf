"""Per-tenant quotas over real gRPC: the submission rate and the open tasks limit answer
RESOURCE_EXHAUSTED with a RetryInfo and store nothing; the open count is exact under concurrent
submissions and frees up as tasks end."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dill
import grpc
import pytest
import redis
from faas.v1 import gateway_pb2, gateway_pb2_grpc

from services.common.enrollment import TokenFile
from services.common.errors import error_reason, retry_delay
from services.common.store import Keys
from services.launcher import ServiceProcess, free_port
from services.launcher.platform import grpc_serving
from tests.integration.conftest import PlatformFactory
from tests.integration.fuzz_support import StoredRecords

Metadata = tuple[tuple[str, str], ...]


def wait_for_file(path: str) -> str:
    """Runs until ``path`` exists (bounded), so that the test says when its tasks end."""
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return path


@pytest.fixture
def gate() -> Iterator[Path]:
    """A path the test creates to let its tasks end, in a folder user code can see (on a root
    worker it runs as another user, who cannot enter pytest's private temporary folders)."""
    folder = Path(tempfile.mkdtemp(prefix="faas-quota-gate-"))
    folder.chmod(0o755)
    yield folder / "open"
    shutil.rmtree(folder, ignore_errors=True)


def _register(stub: gateway_pb2_grpc.GatewayServiceStub, fn: object, metadata: Metadata) -> str:
    request = gateway_pb2.RegisterFunctionRequest(name="fn", payload=dill.dumps(fn))
    return str(stub.RegisterFunction(request, metadata=metadata, timeout=10).function_id)


def _execute(
    stub: gateway_pb2_grpc.GatewayServiceStub, function_id: str, arg: object, metadata: Metadata
) -> str:
    request = gateway_pb2.ExecuteFunctionRequest(
        function_id=function_id, payload=dill.dumps(((arg,), {}))
    )
    return str(stub.ExecuteFunction(request, metadata=metadata, timeout=30).task_id)


def _batch(
    stub: gateway_pb2_grpc.GatewayServiceStub,
    function_id: str,
    args: list[object],
    metadata: Metadata,
) -> list[str]:
    request = gateway_pb2.ExecuteBatchRequest(
        function_id=function_id, payloads=[dill.dumps(((a,), {})) for a in args]
    )
    return list(stub.ExecuteBatch(request, metadata=metadata, timeout=30).task_ids)


def _refused(call: Callable[[], object], reason: str) -> float:
    """Asserts ``call`` is refused over a quota with ``reason``; returns its retry delay."""
    with pytest.raises(grpc.RpcError) as refused:
        call()
    error = refused.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert error_reason(error) == reason
    delay = retry_delay(error)
    assert delay is not None and delay > 0, "a RetryInfo with a delay"
    return delay


def _finished(stub: gateway_pb2_grpc.GatewayServiceStub, task_id: str, metadata: Metadata) -> None:
    request = gateway_pb2.GetResultRequest(task_id=task_id)
    request.wait.FromSeconds(30)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        task = stub.GetResult(request, metadata=metadata, timeout=40).task
        if task.status in (3, 4):  # COMPLETED, FAILED
            assert task.status == 3, task.error.message
            return
    pytest.fail(f"task {task_id} did not finish")


def test_the_submission_rate_refuses_with_a_retry_delay_and_stores_nothing(
    make_platform: PlatformFactory, tmp_path: Path
) -> None:
    tokens = TokenFile(tmp_path / "keys")
    alice = (("authorization", f"Bearer {tokens.issue('alice', 'client', tenant='a')}"),)
    bob = (("authorization", f"Bearer {tokens.issue('bob', 'client', tenant='b')}"),)
    platform = make_platform(
        workers=1,
        worker_processes=1,
        extra_env={
            "FAAS_API_KEYS_FILE": str(tokens.path),
            # One task in 1000 s past a burst of 3: nothing refills during the test.
            "FAAS_TENANT_SUBMIT_RATE": "0.001",
            "FAAS_TENANT_SUBMIT_BURST": "3",
        },
    )
    records = StoredRecords(platform, Keys())
    with grpc.insecure_channel(platform.gateway_target) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        function_id = _register(stub, abs, alice)
        assert len(_batch(stub, function_id, [-1, -2], alice)) == 2
        before = records.now()
        _refused(lambda: _batch(stub, function_id, [-3, -4], alice), "RATE_LIMITED")  # whole
        assert records.now() == before
        _execute(stub, function_id, -3, alice)  # the third of the burst
        before = records.now()
        delay = _refused(lambda: _execute(stub, function_id, -5, alice), "RATE_LIMITED")
        assert 900 < delay <= 1000  # a token comes in 1000 s
        assert records.now() == before
        # Bob is another tenant: his bucket is full.
        bobs = _register(stub, abs, bob)
        assert len(_batch(stub, bobs, [1, 2, 3], bob)) == 3
        _refused(lambda: _execute(stub, bobs, 4, bob), "RATE_LIMITED")
    records.close()


def test_the_open_tasks_limit_is_exact_and_frees_up_as_tasks_end(
    make_platform: PlatformFactory, gate: Path
) -> None:
    limit = 5
    platform = make_platform(
        workers=1, worker_processes=2, extra_env={"FAAS_TENANT_MAX_OPEN_TASKS": str(limit)}
    )
    admin = redis.Redis.from_url(platform.redis_url)
    records = StoredRecords(platform, Keys())
    with grpc.insecure_channel(platform.gateway_target) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        function_id = _register(stub, wait_for_file, ())
        # Many concurrent submissions (coalesced into shared store writes): exactly `limit` pass.
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(
                pool.map(lambda _: _submit_or_refusal(stub, function_id, str(gate)), range(20))
            )
        accepted = [o for o in outcomes if not o.startswith("refused:")]
        assert len(accepted) == limit, outcomes
        assert set(outcomes) - set(accepted) == {"refused:OPEN_TASKS_LIMIT"}
        assert admin.zcard(Keys().open_tasks("default")) == limit
        before = records.now()
        assert before.tasks == limit
        _refused(lambda: _execute(stub, function_id, str(gate), ()), "OPEN_TASKS_LIMIT")
        _refused(lambda: _batch(stub, function_id, [str(gate)] * 2, ()), "OPEN_TASKS_LIMIT")
        assert records.now() == before  # nothing stored for either
        gate.touch()  # the tasks end
        for task_id in accepted:
            _finished(stub, task_id, ())
        assert admin.zcard(Keys().open_tasks("default")) == 0
        # Room again: a batch of exactly the limit fits, one more does not.
        batch = _batch(stub, function_id, [str(gate)] * limit, ())
        assert len(batch) == limit
        for task_id in batch:
            _finished(stub, task_id, ())
        _refused(
            lambda: _batch(stub, function_id, [str(gate)] * (limit + 1), ()), "OPEN_TASKS_LIMIT"
        )
    admin.close()
    records.close()


def _submit_or_refusal(
    stub: gateway_pb2_grpc.GatewayServiceStub, function_id: str, gate: str
) -> str:
    try:
        return _execute(stub, function_id, gate, ())
    except grpc.RpcError as exc:
        return f"refused:{error_reason(exc)}"


def test_two_gateways_together_never_pass_the_open_tasks_limit(
    make_platform: PlatformFactory, gate: Path, tmp_path: Path
) -> None:
    limit = 6
    platform = make_platform(
        workers=1, worker_processes=1, extra_env={"FAAS_TENANT_MAX_OPEN_TASKS": str(limit)}
    )
    # A second gateway on the same Redis and dispatcher, as the launcher starts its own.
    target = f"127.0.0.1:{free_port('127.0.0.1')}"
    argv = list(platform.gateway.argv)
    argv[argv.index("--address") + 1] = target
    second = ServiceProcess(
        "gateway-2", argv, dict(platform.gateway.env), grpc_serving(target), tmp_path / "gw2.log"
    )
    second.start()
    admin = redis.Redis.from_url(platform.redis_url)
    try:
        with (
            grpc.insecure_channel(platform.gateway_target) as one,
            grpc.insecure_channel(target) as two,
        ):
            stubs = [gateway_pb2_grpc.GatewayServiceStub(c) for c in (one, two)]
            function_id = _register(stubs[0], wait_for_file, ())
            with ThreadPoolExecutor(16) as pool:
                outcomes = list(
                    pool.map(
                        lambda i: _submit_or_refusal(stubs[i % 2], function_id, str(gate)),
                        range(40),
                    )
                )
            accepted = [o for o in outcomes if not o.startswith("refused:")]
            assert len(accepted) == limit, outcomes
            assert admin.zcard(Keys().open_tasks("default")) == limit
            gate.touch()
            for task_id in accepted:
                _finished(stubs[0], task_id, ())
            assert admin.zcard(Keys().open_tasks("default")) == 0
    finally:
        admin.close()
        second.stop()
