"""Placement from every client: REST bodies, the SDK's keywords and the CLI's flags (issue 10).

One push platform with a worker labelled gpu=h200,zone=a (1 gpu) and one labelled zone=b; a
labelled execution lands only on the matching worker, whichever client asked for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dill
import httpx
import pytest
from faas import FaaSClient, InvalidArgument
from faas.v1 import common_pb2

from services.launcher import Platform, PlatformConfig
from tests.support import GrpcClient, serialize, wait_until

# How long the dispatcher lets a task wait for a compatible worker here.
ENV = {"FAAS_NO_WORKER_TIMEOUT_SECONDS": "5"}


def square(x: int) -> int:
    return x * x


class Labelled:
    """The platform, its two workers' ids and a gRPC client to read tasks with."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        gpu = platform.new_worker(2)
        gpu.argv += ["--label", "gpu=h200,zone=a", "--resource", "gpu=1"]
        gpu.start()
        cpu = platform.new_worker(2)
        cpu.argv += ["--label", "zone=b"]
        cpu.start()
        self.gpu, self.cpu = gpu.name, cpu.name
        self.grpc = GrpcClient(platform)
        self.http = httpx.Client(base_url=platform.rest_url, timeout=30)

    def workers_of(self, task_ids: list[str]) -> set[str]:
        """The workers that ran these tasks, once each COMPLETED."""
        states = self.grpc.wait_all(task_ids, timeout=120)
        assert all(s.status == common_pb2.TASK_STATUS_COMPLETED for s in states), states[:2]
        return {s.worker_id for s in states}

    def completed(self) -> dict[str, int]:
        return {w: s.completed for w, s in self.grpc.workers().items()}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Labelled]:
    root: Path = tmp_path_factory.mktemp("placement-clients")
    platform = Platform(
        PlatformConfig(
            workers=0,
            worker_processes=2,
            gateway_port=0,
            dispatcher_port=0,
            rest_port=0,
            data_dir=root / "data",
            log_dir=root / "logs",
            extra_env=ENV,
        )
    )
    platform.start()
    try:
        labelled = Labelled(platform)
        yield labelled
        labelled.grpc.channel.close()
        labelled.http.close()
    finally:
        platform.stop()


@pytest.fixture
def client(labelled: Labelled) -> Iterator[FaaSClient]:
    with FaaSClient(labelled.platform.gateway_target) as client:
        yield client


# --- REST ----------------------------------------------------------------------------------


def _rest_register(labelled: Labelled, **extra: Any) -> str:
    body = {"name": "square", "payload": serialize(square), **extra}
    reply = labelled.http.post("/register_function", json=body)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["function_id"])


def _call(x: int) -> str:
    return serialize(((x,), {}))


def test_rest_execution_placement_lands_on_the_matching_worker(labelled: Labelled) -> None:
    function_id = _rest_register(labelled)
    on_b = []
    for x in range(4):
        body = {
            "function_id": function_id,
            "payload": _call(x),
            "placement": {"labels": {"zone": "b"}},
        }
        reply = labelled.http.post("/execute_function", json=body)
        assert reply.status_code == 200, reply.text
        on_b.append(reply.json()["task_id"])
    batch = {
        "function_id": function_id,
        "payloads": [_call(x) for x in range(6)],
        "placement": {"resources": {"gpu": 1}},
    }
    reply = labelled.http.post("/execute_batch", json=batch)
    assert reply.status_code == 200, reply.text
    on_gpu = reply.json()["task_ids"]
    assert labelled.workers_of(on_b) == {labelled.cpu}
    assert labelled.workers_of(on_gpu) == {labelled.gpu}
    states = labelled.grpc.wait_all(on_gpu)
    assert [dill.loads(s.result) for s in states] == [x * x for x in range(6)]
    # The function's placement (gpu=h200) with the execution's (zone=a) over it.
    placed = _rest_register(labelled, placement={"labels": {"gpu": "h200"}})
    body = {"function_id": placed, "payload": _call(3), "placement": {"labels": {"zone": "a"}}}
    task_id = labelled.http.post("/execute_function", json=body).json()["task_id"]
    assert labelled.workers_of([task_id]) == {labelled.gpu}


def test_rest_bad_execution_placement_is_an_error_with_a_json_detail(labelled: Labelled) -> None:
    function_id = _rest_register(labelled)
    single = {"function_id": function_id, "payload": _call(1)}
    batch = {"function_id": function_id, "payloads": [_call(1)]}
    for path, body in (("/execute_function", single), ("/execute_batch", batch)):
        # The gateway's check: a label needs a name.
        reply = labelled.http.post(path, json={**body, "placement": {"labels": {"": "x"}}})
        assert reply.status_code == 400, reply.text
        assert "placement has a label or resource ''" in reply.json()["detail"]
        # The shim's: amounts are numbers >= 0, and no unknown keys.
        for bad in ({"resources": {"gpu": -1}}, {"lables": {"gpu": "h200"}}):
            reply = labelled.http.post(path, json={**body, "placement": bad})
            assert reply.status_code == 422, reply.text
            assert isinstance(reply.json()["detail"], list)
    schema = labelled.http.get("/openapi.json").json()["components"]["schemas"]
    assert "placement" in schema["ExecuteFunctionBody"]["properties"]
    assert "placement" in schema["ExecuteBatchBody"]["properties"]


def test_rest_execution_nobody_can_take_says_why(labelled: Labelled) -> None:
    function_id = _rest_register(labelled)
    body = {
        "function_id": function_id,
        "payload": _call(2),
        "placement": {"labels": {"gpu": "b300"}},
    }
    task_id = labelled.http.post("/execute_function", json=body).json()["task_id"]
    reply: dict[str, Any] = {}

    def has_reason() -> bool:
        reply.update(labelled.http.get(f"/status/{task_id}").json())
        return "pending_reason" in reply or reply["status"] != "QUEUED"

    wait_until(has_reason, 30, f"a pending reason for {task_id}")
    if reply["status"] == "QUEUED":  # it may have failed already on a slow machine
        assert reply["pending_reason"] == "no connected worker has label gpu=b300"
    result = labelled.http.get(f"/result/{task_id}", params={"wait": 30}, timeout=60).json()
    assert result["error"]["cause"] == "NO_COMPATIBLE_WORKER", result


# --- SDK -----------------------------------------------------------------------------------


def test_sdk_registration_placement(labelled: Labelled, client: FaaSClient) -> None:
    function_id = client.register(square, labels={"gpu": "h200"}, resources={"gpu": 1})
    placement = client.get_function(function_id).placement
    assert dict(placement.labels) == {"gpu": "h200"}
    assert dict(placement.resources) == {"gpu": 1.0}
    assert placement.any_python is False
    task_ids = [client.execute(function_id, (x,)) for x in range(4)]
    assert labelled.workers_of(task_ids) == {labelled.gpu}
    assert client.result(task_ids[3], timeout=60) == 9
    anywhere = client.register(square, any_python=True)
    assert client.get_function(anywhere).placement.any_python is True
    assert client.result(client.execute(anywhere, (5,)), timeout=60) == 25


def test_sdk_execution_placement(labelled: Labelled, client: FaaSClient) -> None:
    function_id = client.register(square)
    on_b = [client.execute(function_id, (x,), labels={"zone": "b"}) for x in range(3)]
    on_gpu = [client.execute(function_id, (x,), resources={"gpu": 1}) for x in range(3)]
    batch = client.execute_batch(function_id, [((x,), {}) for x in range(4)], labels={"zone": "a"})
    assert labelled.workers_of(on_b) == {labelled.cpu}
    assert labelled.workers_of(on_gpu + batch) == {labelled.gpu}
    futures = [client.submit(function_id, x, labels={"zone": "b"}) for x in range(3)]
    assert [f.result(timeout=60) for f in futures] == [0, 1, 4]
    assert {f.info.worker_id for f in futures if f.info is not None} == {labelled.cpu}
    # map: every task on the gpu worker, none on the other.
    before = labelled.completed()
    assert list(client.map(function_id, range(8), labels={"gpu": "h200"}, timeout=120)) == [
        x * x for x in range(8)
    ]
    after = labelled.completed()
    assert after[labelled.gpu] - before[labelled.gpu] == 8
    assert after[labelled.cpu] == before[labelled.cpu]


def test_sdk_bad_placement_is_refused(labelled: Labelled, client: FaaSClient) -> None:
    function_id = client.register(square)
    with pytest.raises(InvalidArgument, match=r"placement\.resources\['gpu'\]"):
        client.execute(function_id, (1,), resources={"gpu": -1})
    with pytest.raises(TypeError, match="labels"):
        client.execute(function_id, (1,), labels={"gpu": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="resources"):
        client.register(square, resources={"gpu": "one"})  # type: ignore[dict-item]


# --- CLI -----------------------------------------------------------------------------------

TASKS = textwrap.dedent(
    """
    def cube(x):
        return x ** 3
    """
)


def _faas(labelled: Labelled, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAAS_TARGET": labelled.platform.gateway_target}
    return subprocess.run(
        [sys.executable, "-m", "faas", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_cli_placement_flags(labelled: Labelled, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.py"
    tasks.write_text(TASKS)
    done = _faas(
        labelled,
        "register",
        f"{tasks}:cube",
        "--label",
        "gpu=h200",
        "--resource",
        "gpu=1",
        "--any-python",
    )
    assert done.returncode == 0, done.stderr
    function_id = done.stdout.strip()
    shown = _faas(labelled, "function", function_id, "--json")
    assert shown.returncode == 0, shown.stderr
    placement = json.loads(shown.stdout)["placement"]
    assert placement == {
        "labels": {"gpu": "h200"},
        "resources": {"gpu": 1.0},
        "any_python": True,
        "memory_limit_mb": 0,
        "cpu_limit_seconds": 0.0,
    }
    run = _faas(labelled, "execute", function_id, "--args", "[3]", "--wait", "--json")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert (document["result"], document["worker_id"]) == (27, labelled.gpu)

    plain = _faas(labelled, "register", f"{tasks}:cube").stdout.strip()
    for flags, worker in (
        (["--label", "zone=b"], labelled.cpu),
        (["--resource", "gpu=1"], labelled.gpu),
    ):
        run = _faas(labelled, "execute", plain, "--args", "[2]", *flags, "--wait", "--json")
        assert run.returncode == 0, run.stderr
        document = json.loads(run.stdout)
        assert (document["result"], document["worker_id"]) == (8, worker)
    batch = _faas(
        labelled,
        "execute",
        plain,
        "--args-file",
        "-",
        "--label",
        "zone=b",
        "--label",
        "gpu=h200,site=x",
        stdin="[1]\n[2]\n",
    )
    # Labels nobody has all of: the tasks wait, and say why.
    assert batch.returncode == 0, batch.stderr
    task_ids = batch.stdout.split()
    assert len(task_ids) == 2
    reply: dict[str, Any] = {}

    def has_reason() -> bool:
        reply.update(labelled.http.get(f"/status/{task_ids[0]}").json())
        return "pending_reason" in reply or reply["status"] != "QUEUED"

    wait_until(has_reason, 30, f"a pending reason for {task_ids[0]}")
    if reply["status"] == "QUEUED":  # it may have failed already on a slow machine
        assert reply["pending_reason"] == "no connected worker has label site=x"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--label", "gpu"], "--label expects KEY=VALUE[,KEY=VALUE...], got 'gpu'"),
        (["--label", "=h200"], "--label expects KEY=VALUE[,KEY=VALUE...], got '=h200'"),
        (["--resource", "gpu=one"], "--resource gpu: not a number: 'one'"),
        (["--resource", "gpu=-1"], "--resource gpu: must be a finite number >= 0, got '-1'"),
        (["--resource", "gpu=nan"], "--resource gpu: must be a finite number >= 0, got 'nan'"),
    ],
)
def test_cli_bad_placement_flags_are_usage_errors(
    labelled: Labelled, flags: list[str], message: str
) -> None:
    done = _faas(labelled, "execute", "some-function", "--args", "[1]", *flags)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
