"""Executing functions over REST: a task id for a valid request, errors that change nothing."""

from __future__ import annotations

import uuid

import pytest
import redis

from tests.support import RestClient, serialize


def _task_keys(client: redis.Redis) -> int:
    return sum(1 for _ in client.scan_iter(match="faas:task:*"))


def test_execute_returns_a_task_id(rest: RestClient) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    task_id = rest.execute(rest.register(add, "add"), 1, 2)
    assert str(uuid.UUID(task_id)) == task_id
    assert rest.wait_result(task_id)["status"] == "COMPLETED"


def test_each_execution_is_its_own_task(rest: RestClient) -> None:
    def ident(x: int) -> int:
        return x

    function_id = rest.register(ident)
    ids = [rest.execute(function_id, i) for i in range(5)]
    assert len(set(ids)) == 5
    assert [rest.run(function_id, i) for i in range(3)] == [0, 1, 2]


def test_unknown_function_is_404_and_creates_no_task(
    rest: RestClient, redis_client: redis.Redis
) -> None:
    before = _task_keys(redis_client)
    reply = rest.http.post(
        "/execute_function",
        json={"function_id": str(uuid.uuid4()), "payload": serialize(((1,), {}))},
    )
    assert reply.status_code == 404
    assert "not found" in reply.json()["detail"]
    assert _task_keys(redis_client) == before


@pytest.mark.parametrize("payload", ["payload", "", serialize(((1,), {}))[:-10]])
def test_bad_arguments_payload_is_400(
    rest: RestClient, redis_client: redis.Redis, payload: str
) -> None:
    def f(x: int) -> int:
        return x

    function_id = rest.register(f)
    before = _task_keys(redis_client)
    reply = rest.http.post(
        "/execute_function", json={"function_id": function_id, "payload": payload}
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["detail"]
    assert _task_keys(redis_client) == before


def test_arguments_of_the_wrong_shape_fail_the_task(rest: RestClient) -> None:
    def f(x: int) -> int:
        return x

    function_id = rest.register(f)
    reply = rest.http.post(
        "/execute_function", json={"function_id": function_id, "payload": serialize([1, 2, 3])}
    )
    assert reply.status_code == 200
    body = rest.wait_result(reply.json()["task_id"])
    assert body["status"] == "FAILED"
    assert body["error"]["cause"] == "BAD_PAYLOAD"


def test_request_id_makes_execute_idempotent(rest: RestClient) -> None:
    def f(x: int) -> int:
        return x

    function_id = rest.register(f)
    body = {"function_id": function_id, "payload": serialize(((7,), {})), "request_id": "abc-1"}
    first = rest.http.post("/execute_function", json=body).json()["task_id"]
    second = rest.http.post("/execute_function", json=body).json()["task_id"]
    assert first == second
    assert rest.wait_result(first)["status"] == "COMPLETED"


def test_request_id_reused_for_another_function_is_409(rest: RestClient) -> None:
    def f(x: int) -> int:
        return x

    first_fn, other_fn = rest.register(f), rest.register(f)
    body = {"function_id": first_fn, "payload": serialize(((1,), {})), "request_id": "key-409"}
    assert rest.http.post("/execute_function", json=body).status_code == 200
    reply = rest.http.post("/execute_function", json={**body, "function_id": other_fn})
    assert reply.status_code == 409
    assert "another function" in reply.json()["detail"]


def test_execute_batch_with_a_request_id_is_idempotent(
    rest: RestClient, redis_client: redis.Redis
) -> None:
    def f(x: int) -> int:
        return x + 1

    function_id = rest.register(f)
    body = {
        "function_id": function_id,
        "payloads": [serialize(((i,), {})) for i in range(5)],
        "request_id": "batch-1",
    }
    first = rest.http.post("/execute_batch", json=body)
    assert first.status_code == 200, first.text
    before = _task_keys(redis_client)
    again = rest.http.post("/execute_batch", json=body)
    assert again.json()["task_ids"] == first.json()["task_ids"]
    assert _task_keys(redis_client) == before
    results = [rest.wait_result(t) for t in first.json()["task_ids"]]
    assert [r["status"] for r in results] == ["COMPLETED"] * 5
