"""HTTP status codes of the REST contract: 400, 404, 413, 422, and never a 500."""

from __future__ import annotations

import codecs
import uuid

from tests.support import RestClient, serialize


def test_400_for_a_payload_that_is_not_a_function(rest: RestClient) -> None:
    reply = rest.http.post("/register_function", json={"name": "x", "payload": "payload"})
    assert reply.status_code == 400
    assert reply.json()["detail"]


def test_404_for_unknown_ids(rest: RestClient) -> None:
    unknown = str(uuid.uuid4())
    assert rest.http.get(f"/status/{unknown}").status_code == 404
    assert rest.http.get(f"/result/{unknown}").status_code == 404
    reply = rest.http.post(
        "/execute_function", json={"function_id": unknown, "payload": serialize(((), {}))}
    )
    assert reply.status_code == 404


def test_413_for_a_payload_over_the_limit(rest: RestClient) -> None:
    def f(x: bytes) -> int:
        return len(x)

    function_id = rest.register(f)
    big = codecs.encode(b"\x80\x04" + b"x" * (17 * 1024 * 1024), "base64").decode()
    reply = rest.http.post("/execute_function", json={"function_id": function_id, "payload": big})
    assert reply.status_code == 413
    assert "limit" in reply.json()["detail"]


def test_422_for_wrong_shapes(rest: RestClient) -> None:
    assert rest.http.post("/execute_function", json={"function_id": "x"}).status_code == 422
    assert rest.http.post("/register_function", json={"payload": "x"}).status_code == 422
    assert rest.http.get("/result/x", params={"wait": "soon"}).status_code == 422


def test_no_500_for_odd_ids(rest: RestClient) -> None:
    for task_id in ("x" * 300, "%00", "..", "a b"):
        reply = rest.http.get(f"/status/{task_id}")
        assert reply.status_code in (400, 404), (task_id, reply.status_code)
        assert reply.json()["detail"]
