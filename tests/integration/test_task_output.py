"""Captured output (issue 13): what a function prints is kept with its task and read back over
gRPC (GetTaskOutput), REST (GET /logs/{task_id}) and the CLI (faas logs), in push and local
mode; cut at --max-output-bytes with truncated set; another tenant's task answers NOT_FOUND."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
import pytest
from faas.v1 import gateway_pb2

from services.launcher.platform import Platform
from tests.support import GrpcClient, RestClient, wait_until

pytestmark = pytest.mark.integration


def _chatty(n: int) -> int:
    import sys

    print(f"to stdout {n}")
    sys.stdout.flush()
    print(f"to stderr {n}", file=sys.stderr)
    sys.stderr.flush()
    return n


def _output(client: GrpcClient, task_id: str) -> gateway_pb2.GetTaskOutputResponse:
    request = gateway_pb2.GetTaskOutputRequest(task_id=task_id)
    reply: gateway_pb2.GetTaskOutputResponse = client.stub.GetTaskOutput(
        request, timeout=10, metadata=client.metadata
    )
    return reply


def _cli(platform: Platform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAAS_TARGET": platform.gateway_target}
    return subprocess.run(
        [sys.executable, "-m", "faas", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _run(client: GrpcClient, fn: object, *args: object) -> str:
    (task_id,) = client.submit(client.register(fn), [args])  # type: ignore[arg-type]
    client.wait_all([task_id])
    return task_id


@pytest.mark.parametrize("mode", ["push", "pull", "local"])
def test_output_read_over_grpc_rest_and_cli(make_platform, mode: str) -> None:  # type: ignore[no-untyped-def]
    platform = make_platform(mode=mode, worker_processes=1)
    client = GrpcClient(platform)
    task_id = _run(client, _chatty, 7)

    reply = _output(client, task_id)
    assert reply.task_id == task_id
    assert "to stdout 7\n" in reply.output and "to stderr 7\n" in reply.output
    assert not reply.truncated
    assert client.state(task_id).output_bytes == len(reply.output.encode())

    rest = RestClient(platform.rest_url)
    try:
        body = rest.http.get(f"/logs/{task_id}").json()
        assert body == {"task_id": task_id, "output": reply.output, "truncated": False}
        assert rest.http.get("/logs/no-such-task").status_code == 404
    finally:
        rest.close()

    run = _cli(platform, "logs", task_id)
    assert run.returncode == 0, run.stderr
    assert run.stdout == reply.output
    run = _cli(platform, "logs", task_id, "--json")
    assert json.loads(run.stdout) == {
        "task_id": task_id,
        "output": reply.output,
        "truncated": False,
    }


def test_long_output_is_cut_and_a_failure_keeps_its_output(make_platform) -> None:  # type: ignore[no-untyped-def]
    platform = make_platform(worker_processes=1, extra_env={"FAAS_MAX_OUTPUT_BYTES": "100"})
    client = GrpcClient(platform)

    def loud() -> None:
        print("x" * 5000)

    def fails() -> None:
        print("about to fail")
        raise ValueError("boom")

    reply = _output(client, _run(client, loud))
    assert reply.truncated
    assert reply.output.startswith("x" * 100)
    assert "[output truncated" in reply.output and len(reply.output) < 400

    failed = _run(client, fails)
    assert client.state(failed).error.message  # FAILED, with its error
    reply = _output(client, failed)
    assert reply.output == "about to fail\n" and not reply.truncated


def test_another_tenants_task_output_is_not_found(make_platform) -> None:  # type: ignore[no-untyped-def]
    platform = make_platform(worker_processes=1, api_keys=True)
    assert platform.api_keys is not None
    mine = GrpcClient(platform, platform.admin_key)
    other = GrpcClient(platform, platform.api_keys.issue("other", "client", tenant="other"))
    task_id = _run(mine, _chatty, 1)
    assert "to stdout 1" in _output(mine, task_id).output
    for task in (task_id, "no-such-task"):
        with pytest.raises(grpc.RpcError) as raised:
            _output(other, task)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_worker_json_log_line_about_a_task_has_its_id(make_platform) -> None:  # type: ignore[no-untyped-def]
    platform = make_platform(worker_processes=1, extra_env={"FAAS_LOG_JSON": "true"})
    client = GrpcClient(platform)

    def fails() -> None:
        raise ValueError("logged")

    task_id = _run(client, fails)
    log_path = platform.workers[0].log_path
    assert log_path is not None

    def line_of_task() -> dict[str, object] | None:
        for text in log_path.read_text().splitlines():
            if text.startswith("{"):
                line = json.loads(text)
                if line.get("task_id") == task_id:
                    return dict(line)
        return None

    wait_until(lambda: line_of_task() is not None, 30, "a worker log line with the task id")
    line = line_of_task()
    assert line is not None
    assert line["service"] == "worker" and "FAILED" in str(line["msg"])
    assert line["worker_id"] == platform.workers[0].name
