"""Helpers shared by the integration tests: the contract's serialize, a REST client, waits."""

from __future__ import annotations

import codecs
import time
from typing import Any

import dill
import httpx


def serialize(obj: Any) -> str:
    """The REST contract's serialize: base64 (with newlines) of dill.dumps."""
    return codecs.encode(dill.dumps(obj), "base64").decode()


def deserialize(text: str) -> Any:
    return dill.loads(codecs.decode(text.encode(), "base64"))


TERMINAL = ("COMPLETED", "FAILED")


class RestClient:
    """A client written against the fixed REST contract."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30.0)

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


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Polls ``predicate`` until true; fails the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
