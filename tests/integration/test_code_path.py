"""Functions pickled by reference by plain dill clients (REST, gRPC): they run where their module
imports (the workers' code path, FAAS_CODE_PATH), fail CODE_NOT_IMPORTABLE with a message naming
the module where it does not, and GetFunction (gRPC, REST, CLI) says which kind a function is.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import dill
import grpc
import pytest
from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

from services.launcher import Platform
from tests.integration.conftest import PlatformFactory
from tests.support import RestClient, deserialize

LIB_SOURCE = textwrap.dedent(
    """
    SCALE = 2

    def double(x):
        return SCALE * x

    class Tools:
        @staticmethod
        def triple(x):
            return 3 * x
    """
)


@pytest.fixture(scope="module")
def mylib(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The user's own module, in a folder that the workers (working directory: the repo) do not
    have on their path; imported here only, so plain dill pickles its functions by reference."""
    folder = tmp_path_factory.mktemp("app")
    folder.chmod(0o755)  # pytest's folders are 0700: readable by the tasks' user (nobody if root)
    name = f"faas_it_mylib_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(LIB_SOURCE)
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))
    yield module
    sys.modules.pop(name, None)


def _folder(module: ModuleType) -> str:
    return os.path.dirname(str(module.__file__))


def _run(rest: RestClient, function_id: str, *args: Any) -> dict[str, Any]:
    return rest.wait_result(rest.execute(function_id, *args), timeout=90)


def test_a_reference_the_workers_cannot_import_fails_with_its_own_cause(
    rest: RestClient, mylib: ModuleType
) -> None:
    payload = dill.dumps(mylib.double)
    assert b"co_code" not in payload  # plain dill: only "module double"
    body = _run(rest, rest.register(mylib.double, "double"), 21)
    assert body["status"] == "FAILED"
    error = body["error"]
    assert error["cause"] == "CODE_NOT_IMPORTABLE", error
    message = error["message"]
    assert "\n" not in message
    assert f"function pickled by reference to module '{mylib.__name__}'" in message
    assert "which this worker cannot import (code path: " in message
    assert f"put {mylib.__name__} on the workers' code path (--code-path / FAAS_CODE_PATH)" in (
        message
    )
    assert isinstance(deserialize(body["result"]), ModuleNotFoundError)


def test_rest_get_function_shows_a_reference_and_by_value(
    rest: RestClient, mylib: ModuleType
) -> None:
    def nested(x: int) -> int:
        return x + 1

    payload = dill.dumps(mylib.Tools.triple)
    function_id = rest.register(mylib.Tools.triple, "triple", timeout=2.5)
    reply = rest.http.get(f"/functions/{function_id}")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["function_id"] == function_id and body["name"] == "triple"
    assert (body["by_reference"], body["module"], body["qualname"]) == (
        True,
        mylib.__name__,
        "Tools.triple",
    )
    assert body["size_bytes"] == len(payload) and body["timeout"] == 2.5
    assert body["runtime"]["pickle_protocol"] == payload[1]  # PROTO's argument
    assert body["placement"] == {
        "labels": {},
        "resources": {},
        "any_python": False,
        "memory_limit_mb": 0,
        "cpu_limit_seconds": 0.0,
    }
    assert body["created_time"].endswith("+00:00")

    by_value = rest.http.get(f"/functions/{rest.register(nested, 'nested')}").json()
    assert (by_value["by_reference"], by_value["module"], by_value["qualname"]) == (False, "", "")

    missing = rest.http.get("/functions/no-such-function")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "function 'no-such-function' not found"


def test_rest_registration_records_runtime_and_placement(
    rest: RestClient, mylib: ModuleType
) -> None:
    runtime = {"python_version": "3.11.7", "dill_version": dill.__version__, "pickle_protocol": 9}
    placement = {"labels": {"gpu": "h200"}, "resources": {"gpu": 1}, "any_python": True}
    function_id = rest.register(mylib.double, "double", runtime=runtime, placement=placement)
    body = rest.http.get(f"/functions/{function_id}").json()
    assert body["runtime"]["python_version"] == "3.11.7"
    assert body["runtime"]["dill_version"] == dill.__version__
    assert body["runtime"]["pickle_protocol"] == dill.dumps(mylib.double)[1]  # the stream's
    assert body["placement"] == {
        "labels": {"gpu": "h200"},
        "resources": {"gpu": 1.0},
        "any_python": True,
        "memory_limit_mb": 0,
        "cpu_limit_seconds": 0.0,
    }


@pytest.fixture
def stub(shared_platform: Platform) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    with grpc.insecure_channel(shared_platform.gateway_target) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def test_grpc_get_function(stub: gateway_pb2_grpc.GatewayServiceStub, mylib: ModuleType) -> None:
    payload = dill.dumps(mylib.double, protocol=2)
    registered = stub.RegisterFunction(
        gateway_pb2.RegisterFunctionRequest(
            name="double",
            payload=payload,
            runtime=common_pb2.Runtime(python_version="3.11.7", serializer="dill"),
            placement=common_pb2.Placement(labels={"zone": "a"}),
        ),
        timeout=10,
    )
    info = stub.GetFunction(
        gateway_pb2.GetFunctionRequest(function_id=registered.function_id), timeout=10
    ).function
    assert (info.function_id, info.name, info.size_bytes) == (
        registered.function_id,
        "double",
        len(payload),
    )
    assert (info.by_reference, info.module, info.qualname) == (True, mylib.__name__, "double")
    assert info.runtime == common_pb2.Runtime(
        python_version="3.11.7", serializer="dill", pickle_protocol=2
    )
    assert dict(info.placement.labels) == {"zone": "a"}
    assert not info.HasField("timeout") and info.HasField("created_time")

    with pytest.raises(grpc.RpcError) as refused:  # a placement no worker could ever meet
        stub.RegisterFunction(
            gateway_pb2.RegisterFunctionRequest(
                name="double",
                payload=payload,
                placement=common_pb2.Placement(resources={"gpu": -1.0}),
            ),
            timeout=10,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    for function_id, code in (
        ("no-such-function", grpc.StatusCode.NOT_FOUND),
        ("", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetFunction(gateway_pb2.GetFunctionRequest(function_id=function_id), timeout=10)
        assert caught.value.code() == code


def _faas(*args: str, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faas", *args, "--target", target],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_shows_a_function(
    rest: RestClient, shared_platform: Platform, mylib: ModuleType
) -> None:
    target = shared_platform.gateway_target
    function_id = rest.register(mylib.double, "double")
    human = _faas("function", function_id, target=target)
    assert human.returncode == 0, human.stderr
    lines = dict(line.split(None, 1) for line in human.stdout.strip().splitlines())
    assert lines["function"] == function_id and lines["name"] == "double"
    assert lines["code"].startswith(
        f"by reference to {mylib.__name__}.double: runs only on workers that can import "
        f"{mylib.__name__}"
    )
    assert lines["payload"] == (
        f"{len(dill.dumps(mylib.double))} bytes, pickle protocol {dill.dumps(mylib.double)[1]}"
    )
    assert lines["placement"] == "any worker" and lines["timeout"] == "none"

    machine = _faas("function", function_id, "--json", target=target)
    assert machine.returncode == 0, machine.stderr
    document = json.loads(machine.stdout)
    rest_body = rest.http.get(f"/functions/{function_id}").json()
    assert document == rest_body  # one shape for REST and the CLI

    missing = _faas("function", "no-such-function", target=target)
    assert missing.returncode == 3  # not found
    assert "function 'no-such-function' not found" in missing.stderr


@pytest.mark.parametrize(
    "mode",
    ["push", "local"],
)
def test_the_module_on_the_code_path_runs(
    make_platform: PlatformFactory, mylib: ModuleType, mode: str, tmp_path: Path
) -> None:
    # FAAS_CODE_PATH reaches the workers (push) or the dispatcher's own pool (local mode).
    code_path = os.pathsep.join([str(tmp_path / "elsewhere"), _folder(mylib)])
    platform = make_platform(mode=mode, extra_env={"FAAS_CODE_PATH": code_path})
    rest = RestClient(platform.rest_url)
    try:
        for fn, expected in ((mylib.double, 42), (mylib.Tools.triple, 63)):
            body = _run(rest, rest.register(fn), 21)
            assert body["status"] == "COMPLETED", body["error"]
            assert deserialize(body["result"]) == expected
    finally:
        rest.close()
