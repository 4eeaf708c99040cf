"""Listings over real gRPC, REST and the CLI (issue 13): ListTasks pages and filters, tenants,
function counts, DeleteFunction, and expired tasks leaving the listings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dill
import grpc
import httpx
import pytest
from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from google.protobuf import timestamp_pb2

from services.common.enrollment import TokenFile
from services.common.errors import error_reason
from services.launcher import Platform, PlatformConfig
from tests.integration.conftest import PlatformFactory
from tests.support import wait_until

Metadata = tuple[tuple[str, str], ...]
QUEUED, RUNNING = common_pb2.TASK_STATUS_QUEUED, common_pb2.TASK_STATUS_RUNNING
COMPLETED, FAILED = common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED
TERMINAL = (COMPLETED, FAILED)


def flaky(x: int) -> int:
    if x % 4 == 0:
        raise ValueError(f"no multiples of 4: {x}")
    return x


def gate(path: str, x: int) -> int:
    """Holds its process until ``path`` exists (at most two minutes)."""
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return x


class Scene:
    """A keyed platform with one worker process: tenant a has 60 ended tasks of ``flaky`` (45
    COMPLETED, 15 FAILED) and 60 of ``gate`` (one RUNNING, 59 QUEUED, until ``release``)."""

    def __init__(self, platform: Platform, tokens: TokenFile) -> None:
        self.platform = platform
        self.alice_key = tokens.issue("alice", "client", tenant="a")
        self.bob_key = tokens.issue("bob", "client", tenant="b")
        self.alice = _metadata(self.alice_key)
        self.bob = _metadata(self.bob_key)
        self.channel = grpc.insecure_channel(platform.gateway_target)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self.channel)
        # Where user code (another user, on a root worker) can see it.
        self.gate_dir = Path(tempfile.mkdtemp(prefix="faas-listings-"))
        self.gate_dir.chmod(0o755)
        self.release = self.gate_dir / "release"
        self.flaky_id = self.register(flaky)
        self.flaky_tasks = self.execute(self.flaky_id, [(x,) for x in range(60)])
        wait_until(
            lambda: all(s.status in TERMINAL for s in self.states(self.flaky_tasks)),
            120,
            "the flaky tasks to end",
        )
        self.gate_id = self.register(gate)
        self.gate_tasks = self.execute(self.gate_id, [(str(self.release), x) for x in range(60)])
        wait_until(
            lambda: any(s.status == RUNNING for s in self.states(self.gate_tasks)),
            60,
            "a gate task to run",
        )

    def register(self, fn: Any) -> str:
        request = gateway_pb2.RegisterFunctionRequest(name=fn.__name__, payload=dill.dumps(fn))
        return str(self.stub.RegisterFunction(request, metadata=self.alice, timeout=10).function_id)

    def execute(self, function_id: str, calls: list[tuple[Any, ...]]) -> list[str]:
        ids = []
        for args in calls:  # one by one: distinct creation times
            request = gateway_pb2.ExecuteFunctionRequest(
                function_id=function_id, payload=dill.dumps((args, {}))
            )
            ids.append(self.stub.ExecuteFunction(request, metadata=self.alice, timeout=10).task_id)
        return ids

    def states(self, task_ids: list[str]) -> list[common_pb2.TaskState]:
        return [
            self.stub.GetResult(
                gateway_pb2.GetResultRequest(task_id=t), metadata=self.alice, timeout=10
            ).task
            for t in task_ids
        ]

    def newest_first(self, task_ids: list[str]) -> list[str]:
        """The order of a listing: by creation time (ms), newest first; tasks created in the
        same millisecond by id, descending (as the index orders ties)."""
        created = {s.task_id: s.created_time.ToMilliseconds() for s in self.states(task_ids)}
        return sorted(task_ids, key=lambda t: (created[t], t), reverse=True)

    def list_all(self, metadata: Metadata | None = None, **filters: Any) -> list[list[str]]:
        """Every page of ListTasks with ``filters`` (page_size 50 unless given)."""
        pages: list[list[str]] = []
        token = ""
        filters.setdefault("page_size", 50)
        for _ in range(100):
            request = gateway_pb2.ListTasksRequest(page_token=token, **filters)
            reply = self.stub.ListTasks(request, metadata=metadata or self.alice, timeout=10)
            pages.append([t.task_id for t in reply.tasks])
            token = reply.next_page_token
            if not token:
                return pages
        raise AssertionError("ListTasks did not end in 100 pages")

    def listed(self, metadata: Metadata | None = None, **filters: Any) -> list[str]:
        return [t for page in self.list_all(metadata, **filters) for t in page]


def _metadata(key: str) -> Metadata:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("listings")
    tokens = TokenFile(root / "api-keys")
    tokens.issue("placeholder", "client", tenant="nobody")  # the file exists before the start
    platform = Platform(
        PlatformConfig(
            worker_processes=1,
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
    scene = Scene(platform, tokens)
    yield scene
    scene.release.touch()
    scene.channel.close()
    platform.stop()
    shutil.rmtree(scene.gate_dir, ignore_errors=True)


def _stamp(ms: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def test_pages_of_50_cover_every_task_once_newest_first(scene: Scene) -> None:
    pages = scene.list_all()
    ids = [t for page in pages for t in page]
    assert len(ids) == 120 and set(ids) == set(scene.flaky_tasks + scene.gate_tasks)
    assert [len(p) for p in pages] == [50, 50, 20]
    assert ids == scene.newest_first(scene.flaky_tasks + scene.gate_tasks)
    reply = scene.stub.ListTasks(
        gateway_pb2.ListTasksRequest(page_size=5), metadata=scene.alice, timeout=10
    )
    assert all(not t.result for t in reply.tasks)  # listings carry no results
    created = [t.created_time.ToMilliseconds() for t in reply.tasks]
    assert created == sorted(created, reverse=True)


def test_each_filter_returns_exactly_the_matching_tasks(scene: Scene) -> None:
    states = scene.states(scene.flaky_tasks + scene.gate_tasks)
    by_id = {s.task_id: s for s in states}

    def expected(keep: Any) -> set[str]:
        return {s.task_id for s in states if keep(s)}

    failed = scene.listed(statuses=[FAILED])
    assert set(failed) == expected(lambda s: s.status == FAILED) and len(failed) == 15
    completed = scene.listed(statuses=[COMPLETED])
    assert len(completed) == 45 and set(completed) == expected(lambda s: s.status == COMPLETED)
    open_ones = scene.listed(statuses=[QUEUED, RUNNING])
    assert set(open_ones) == set(scene.gate_tasks) and len(open_ones) == 60
    assert scene.listed(function_id=scene.flaky_id) == scene.newest_first(scene.flaky_tasks)
    assert set(scene.listed(function_id=scene.gate_id, statuses=[RUNNING])) == expected(
        lambda s: s.status == RUNNING
    )
    worker = by_id[scene.flaky_tasks[0]].worker_id
    assert worker
    assert set(scene.listed(worker_id=worker)) == expected(lambda s: s.worker_id == worker)
    assert scene.listed(worker_id="no-such-worker") == []
    # A time window: created at or after the 10th flaky task, before the 30th.
    low = by_id[scene.flaky_tasks[10]].created_time.ToMilliseconds()
    high = by_id[scene.flaky_tasks[30]].created_time.ToMilliseconds()
    window = scene.listed(created_after=_stamp(low), created_before=_stamp(high))
    assert set(window) == expected(lambda s: low <= s.created_time.ToMilliseconds() < high) and set(
        window
    ) >= set(scene.flaky_tasks[10:30]) - {
        t for t in scene.flaky_tasks[10:30] if by_id[t].created_time.ToMilliseconds() == high
    }


def test_bad_tokens_and_arguments_are_invalid_argument(scene: Scene) -> None:
    first = scene.stub.ListTasks(
        gateway_pb2.ListTasksRequest(page_size=10, statuses=[FAILED]),
        metadata=scene.alice,
        timeout=10,
    )
    assert first.next_page_token
    bad_requests = [
        gateway_pb2.ListTasksRequest(page_token=first.next_page_token),  # other filters
        gateway_pb2.ListTasksRequest(
            page_token=first.next_page_token, statuses=[FAILED], function_id=scene.flaky_id
        ),
        gateway_pb2.ListTasksRequest(page_token="garbage!"),
        gateway_pb2.ListTasksRequest(page_token="eyJzIjogMX0"),  # base64 JSON, not ours
        gateway_pb2.ListTasksRequest(page_size=-1),
        gateway_pb2.ListTasksRequest(statuses=[common_pb2.TASK_STATUS_UNSPECIFIED]),
        gateway_pb2.ListTasksRequest(function_id="x" * 129),
    ]
    for request in bad_requests:
        with pytest.raises(grpc.RpcError) as caught:
            scene.stub.ListTasks(request, metadata=scene.alice, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
    with pytest.raises(grpc.RpcError) as caught:
        scene.stub.ListFunctions(
            gateway_pb2.ListFunctionsRequest(page_token=first.next_page_token),
            metadata=scene.alice,
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The same filters go on; over 1000 is treated as 1000.
    second = scene.stub.ListTasks(
        gateway_pb2.ListTasksRequest(
            page_size=10, statuses=[FAILED], page_token=first.next_page_token
        ),
        metadata=scene.alice,
        timeout=10,
    )
    assert len(second.tasks) == 5 and not {t.task_id for t in second.tasks} & {
        t.task_id for t in first.tasks
    }
    huge = scene.stub.ListTasks(
        gateway_pb2.ListTasksRequest(page_size=5000), metadata=scene.alice, timeout=10
    )
    assert len(huge.tasks) == 120 and not huge.next_page_token


def test_another_tenant_lists_none_of_them(scene: Scene) -> None:
    assert scene.listed(scene.bob) == []
    assert scene.listed(scene.bob, function_id=scene.flaky_id) == []
    functions = scene.stub.ListFunctions(
        gateway_pb2.ListFunctionsRequest(), metadata=scene.bob, timeout=10
    )
    assert list(functions.functions) == [] and not functions.next_page_token
    with pytest.raises(grpc.RpcError) as caught:
        scene.stub.DeleteFunction(
            gateway_pb2.DeleteFunctionRequest(function_id=scene.flaky_id),
            metadata=scene.bob,
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        scene.stub.ListTasks(gateway_pb2.ListTasksRequest(), timeout=10)  # no key at all
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_functions_list_newest_first_with_exact_counts(scene: Scene) -> None:
    reply = scene.stub.ListFunctions(
        gateway_pb2.ListFunctionsRequest(), metadata=scene.alice, timeout=10
    )
    listed = {f.function_id: f for f in reply.functions}
    assert [f.function_id for f in reply.functions][:2] == [scene.gate_id, scene.flaky_id]
    flaky_counts = listed[scene.flaky_id].counts
    assert (flaky_counts.submitted, flaky_counts.completed, flaky_counts.failed) == (60, 45, 15)
    gate_counts = listed[scene.gate_id].counts
    assert (gate_counts.submitted, gate_counts.completed, gate_counts.failed) == (60, 0, 0)
    got = scene.stub.GetFunction(
        gateway_pb2.GetFunctionRequest(function_id=scene.flaky_id), metadata=scene.alice, timeout=10
    )
    assert got.function.counts == flaky_counts
    one = scene.stub.ListFunctions(
        gateway_pb2.ListFunctionsRequest(page_size=1), metadata=scene.alice, timeout=10
    )
    assert len(one.functions) == 1 and one.next_page_token


def test_rest_and_cli_listings(scene: Scene) -> None:
    headers = {"Authorization": f"Bearer {scene.alice_key}"}
    with httpx.Client(base_url=scene.platform.rest_url, headers=headers, timeout=30) as http:
        reply = http.get("/tasks", params={"status": "FAILED", "page_size": 10})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert len(body["tasks"]) == 10 and body["next_page_token"]
        rest = http.get(
            "/tasks",
            params={"status": "FAILED", "page_size": 10, "page_token": body["next_page_token"]},
        ).json()
        failed = {t["task_id"] for t in body["tasks"] + rest["tasks"]}
        assert failed == set(scene.listed(statuses=[FAILED])) and not rest["next_page_token"]
        assert all(t["result"] is None and t["error"]["cause"] == "RAISED" for t in body["tasks"])
        several = http.get(
            "/tasks", params=[("status", "QUEUED"), ("status", "RUNNING"), ("page_size", 100)]
        ).json()
        assert {t["task_id"] for t in several["tasks"]} == set(scene.gate_tasks)
        by_function = http.get("/tasks", params={"function_id": scene.flaky_id, "page_size": 100})
        assert [t["task_id"] for t in by_function.json()["tasks"]] == scene.newest_first(
            scene.flaky_tasks
        )
        other = http.get(
            "/tasks", params={"status": "COMPLETED", "page_token": body["next_page_token"]}
        )
        assert other.status_code == 400 and "filters" in other.json()["detail"]
        assert http.get("/tasks", params={"status": "DONE"}).status_code == 400
        assert http.get("/tasks", params={"page_token": "nope"}).status_code == 400
        functions = http.get("/functions").json()
        counts = {f["function_id"]: f["counts"] for f in functions["functions"]}
        assert counts[scene.flaky_id] == {"submitted": 60, "completed": 45, "failed": 15}
        one = http.get(f"/functions/{scene.flaky_id}").json()
        assert one["counts"] == counts[scene.flaky_id]
        refused = http.delete(f"/functions/{scene.gate_id}")
        assert refused.status_code == 409 and "QUEUED or RUNNING" in refused.json()["detail"]
        assert http.delete("/functions/no-such-function").status_code == 404
        bob = {"Authorization": f"Bearer {scene.bob_key}"}
        assert http.get("/tasks", headers=bob).json() == {"tasks": [], "next_page_token": ""}
        assert http.delete(f"/functions/{scene.flaky_id}", headers=bob).status_code == 404
    cli = [sys.executable, "-m", "faas", "--target", scene.platform.gateway_target]
    env = {**os.environ, "FAAS_API_KEY": scene.alice_key}
    run = subprocess.run(
        [*cli, "tasks", "--status", "failed", "--limit", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert {t["task_id"] for t in json.loads(run.stdout)["tasks"]} == failed
    run = subprocess.run(
        [*cli, "tasks", "--function", scene.flaky_id, "--limit", "7"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    lines = run.stdout.splitlines()
    assert run.returncode == 0 and lines[0].split()[:2] == ["TASK", "STATUS"] and len(lines) == 8
    assert [line.split()[0] for line in lines[1:]] == scene.newest_first(scene.flaky_tasks)[:7]
    run = subprocess.run(
        [*cli, "functions", "--json"], capture_output=True, text=True, timeout=60, env=env
    )
    assert run.returncode == 0, run.stderr
    listed = {f["function_id"]: f["counts"] for f in json.loads(run.stdout)["functions"]}
    assert listed[scene.flaky_id] == {"submitted": 60, "completed": 45, "failed": 15}
    run = subprocess.run(
        [*cli, "delete-function", scene.gate_id],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 7 and "QUEUED or RUNNING" in run.stderr


def test_delete_function_waits_for_its_open_tasks(scene: Scene) -> None:
    """Last in the module: it releases the gate tasks."""
    with pytest.raises(grpc.RpcError) as caught:
        scene.stub.DeleteFunction(
            gateway_pb2.DeleteFunctionRequest(function_id=scene.gate_id),
            metadata=scene.alice,
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(caught.value) == "FUNCTION_HAS_OPEN_TASKS"
    scene.release.touch()
    wait_until(
        lambda: all(s.status in TERMINAL for s in scene.states(scene.gate_tasks)),
        180,
        "the gate tasks to end",
    )
    scene.stub.DeleteFunction(
        gateway_pb2.DeleteFunctionRequest(function_id=scene.gate_id),
        metadata=scene.alice,
        timeout=10,
    )
    for call, request in (
        (
            scene.stub.ExecuteFunction,
            gateway_pb2.ExecuteFunctionRequest(
                function_id=scene.gate_id, payload=dill.dumps((("x", 1), {}))
            ),
        ),
        (scene.stub.GetFunction, gateway_pb2.GetFunctionRequest(function_id=scene.gate_id)),
        (scene.stub.DeleteFunction, gateway_pb2.DeleteFunctionRequest(function_id=scene.gate_id)),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=scene.alice, timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, request
    functions = scene.stub.ListFunctions(
        gateway_pb2.ListFunctionsRequest(), metadata=scene.alice, timeout=10
    )
    assert scene.gate_id not in {f.function_id for f in functions.functions}
    assert set(scene.listed()) == set(scene.flaky_tasks + scene.gate_tasks)  # records stay
    with httpx.Client(
        base_url=scene.platform.rest_url,
        headers={"Authorization": f"Bearer {scene.alice_key}"},
        timeout=30,
    ) as http:
        deleted = http.delete(f"/functions/{scene.flaky_id}")
        assert deleted.status_code == 200
        assert deleted.json() == {"function_id": scene.flaky_id, "deleted": True}
        assert http.get(f"/functions/{scene.flaky_id}").status_code == 404
        reply = http.post(
            "/execute_function", json={"function_id": scene.flaky_id, "payload": "gARLAS4="}
        )
        assert reply.status_code == 404


def test_an_expired_task_leaves_the_listings(make_platform: PlatformFactory) -> None:
    """An open gateway lists the default tenant; a task whose record expired is not listed."""
    platform = make_platform(worker_processes=1, extra_env={"FAAS_RESULT_TTL_SECONDS": "1"})
    with grpc.insecure_channel(platform.gateway_target) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        fid = stub.RegisterFunction(
            gateway_pb2.RegisterFunctionRequest(name="flaky", payload=dill.dumps(flaky)),
            timeout=10,
        ).function_id
        task_ids = [
            stub.ExecuteFunction(
                gateway_pb2.ExecuteFunctionRequest(function_id=fid, payload=dill.dumps(((x,), {}))),
                timeout=10,
            ).task_id
            for x in (1, 2)
        ]
        listed = stub.ListTasks(gateway_pb2.ListTasksRequest(), timeout=10)
        assert {t.task_id for t in listed.tasks} == set(task_ids)

        def gone() -> bool:
            for request in (
                gateway_pb2.ListTasksRequest(),
                gateway_pb2.ListTasksRequest(function_id=fid),
            ):
                if stub.ListTasks(request, timeout=10).tasks:
                    return False
            return True

        wait_until(gone, 60, "the expired tasks to leave the listings", interval=0.2)
        counts = stub.GetFunction(
            gateway_pb2.GetFunctionRequest(function_id=fid), timeout=10
        ).function.counts
        assert (counts.submitted, counts.completed, counts.failed) == (2, 2, 0)
