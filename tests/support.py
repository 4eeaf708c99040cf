"""Helpers shared by the integration tests: the contract's serialize, a REST client, waits."""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Sequence
from typing import Any

import dill
import grpc
import httpx
from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from google.protobuf import duration_pb2

from services.launcher import Platform


def serialize(obj: Any) -> str:
    """The REST contract's serialize: base64 (with newlines) of dill.dumps."""
    return codecs.encode(dill.dumps(obj), "base64").decode()


def deserialize(text: str) -> Any:
    return dill.loads(codecs.decode(text.encode(), "base64"))


TERMINAL = ("COMPLETED", "FAILED")
TERMINAL_CODES = (common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED)


class RestClient:
    """A client written against the fixed REST contract."""

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self.http = httpx.Client(base_url=base_url, timeout=30.0, headers=headers)

    def close(self) -> None:
        self.http.close()

    def register(self, fn: Any, name: str = "fn", **extra: Any) -> str:
        reply = self.http.post(
            "/register_function", json={"name": name, "payload": serialize(fn), **extra}
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["function_id"])

    def execute(self, function_id: str, *args: Any, **kwargs: Any) -> str:
        reply = self.http.post(
            "/execute_function",
            json={"function_id": function_id, "payload": serialize((args, kwargs))},
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["task_id"])

    def status(self, task_id: str) -> str:
        reply = self.http.get(f"/status/{task_id}")
        assert reply.status_code == 200, reply.text
        return str(reply.json()["status"])

    def result(self, task_id: str, wait: float = 0.0) -> dict[str, Any]:
        params = {"wait": wait} if wait else None
        reply = self.http.get(f"/result/{task_id}", params=params)
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body

    def wait_result(self, task_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The result body once the task is terminal, by long polls bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            body = self.result(task_id, wait=max(0.1, min(left, 10.0)))
            if body["status"] in TERMINAL:
                return body
            if left <= 0:
                raise TimeoutError(f"task {task_id} still {body['status']} after {timeout}s")

    def run(self, function_id: str, *args: Any, **kwargs: Any) -> Any:
        body = self.wait_result(self.execute(function_id, *args, **kwargs))
        assert body["status"] == "COMPLETED", body
        return deserialize(body["result"])


def wait_until(
    predicate: Any, timeout: float, what: str | Callable[[], str], interval: float = 0.05
) -> None:
    """Polls ``predicate`` until true; fails the test after ``timeout`` s, saying ``what`` it
    waited for (a callable is asked then, so that it can show the state at the timeout)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {said}")
        time.sleep(interval)


class GrpcClient:
    """A thin client on the generated stubs, for tests that drive many tasks."""

    def __init__(self, platform: Platform, api_key: str | None = None) -> None:
        self.channel = grpc.insecure_channel(platform.gateway_target)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None

    def register(self, fn: Callable[..., object], timeout: float | None = None) -> str:
        request = gateway_pb2.RegisterFunctionRequest(name=fn.__name__, payload=dill.dumps(fn))
        if timeout:
            request.timeout.FromNanoseconds(int(timeout * 1e9))
        reply = self.stub.RegisterFunction(request, timeout=10, metadata=self.metadata)
        return str(reply.function_id)

    def submit(self, function_id: str, calls: Sequence[tuple[object, ...]]) -> list[str]:
        reply = self.stub.ExecuteBatch(
            gateway_pb2.ExecuteBatchRequest(
                function_id=function_id, payloads=[dill.dumps((args, {})) for args in calls]
            ),
            timeout=30,
            metadata=self.metadata,
        )
        return list(reply.task_ids)

    def state(self, task_id: str, wait: float = 0.0) -> common_pb2.TaskState:
        request = gateway_pb2.GetResultRequest(task_id=task_id)
        if wait:
            request.wait.CopyFrom(duration_pb2.Duration(seconds=int(wait)))
        return self.stub.GetResult(request, timeout=wait + 10, metadata=self.metadata).task

    def wait_all(self, task_ids: Sequence[str], timeout: float = 120) -> list[common_pb2.TaskState]:
        deadline = time.monotonic() + timeout
        out = []
        for task_id in task_ids:
            while True:
                left = deadline - time.monotonic()
                assert left > 0, f"task {task_id} did not finish within {timeout}s"
                state = self.state(task_id, wait=min(left, 10))
                if state.status in TERMINAL_CODES:
                    out.append(state)
                    break
        return out

    def workers(self) -> dict[str, common_pb2.WorkerStats]:
        reply = self.stub.ListWorkers(
            gateway_pb2.ListWorkersRequest(), timeout=10, metadata=self.metadata
        )
        return {w.worker_id: w for w in reply.workers}
