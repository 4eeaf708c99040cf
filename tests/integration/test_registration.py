"""Registering functions over REST: valid payloads get an id, invalid ones a 400 and no change."""

from __future__ import annotations

import base64
import codecs
import uuid

import dill
import pytest
import redis

from tests.support import RestClient, serialize


def _function_keys(client: redis.Redis) -> int:
    return sum(1 for _ in client.scan_iter(match="faas:function:*"))


def test_register_returns_a_function_id(rest: RestClient) -> None:
    def double(x: int) -> int:
        return 2 * x

    function_id = rest.register(double, name="double")
    assert str(uuid.UUID(function_id)) == function_id


def test_register_twice_gives_two_ids(rest: RestClient) -> None:
    def inc(x: int) -> int:
        return x + 1

    assert rest.register(inc, "inc") != rest.register(inc, "inc")


def test_plain_base64_without_newlines_is_accepted(rest: RestClient) -> None:
    def triple(x: int) -> int:
        return 3 * x

    payload = base64.b64encode(dill.dumps(triple)).decode()
    assert "\n" not in payload
    reply = rest.http.post("/register_function", json={"name": "triple", "payload": payload})
    assert reply.status_code == 200, reply.text
    assert rest.run(reply.json()["function_id"], 5) == 15


@pytest.mark.parametrize(
    "payload",
    [
        "payload",  # not base64
        codecs.encode(b"not a pickle at all", "base64").decode(),  # base64, not a pickle
        serialize(5),  # a pickled value, not a function
        serialize("abc"),
        codecs.encode(dill.dumps(len)[:-3], "base64").decode(),  # truncated pickle
        "",
    ],
    ids=["not-base64", "not-pickle", "int", "str", "truncated", "empty"],
)
def test_invalid_payload_is_400_and_changes_nothing(
    rest: RestClient, redis_client: redis.Redis, payload: str
) -> None:
    before = _function_keys(redis_client)
    reply = rest.http.post("/register_function", json={"name": "bad", "payload": payload})
    assert reply.status_code == 400, reply.text
    detail = reply.json()["detail"]
    assert isinstance(detail, str) and detail
    assert _function_keys(redis_client) == before


@pytest.mark.parametrize(
    "body",
    [{"name": "x"}, {"payload": "abc"}, {"name": 1, "payload": ["a"]}, []],
    ids=["no-payload", "no-name", "wrong-types", "not-an-object"],
)
def test_wrong_json_shape_is_422(rest: RestClient, body: object) -> None:
    reply = rest.http.post("/register_function", json=body)
    assert reply.status_code == 422
    assert "detail" in reply.json()


def test_not_json_is_422(rest: RestClient) -> None:
    reply = rest.http.post(
        "/register_function", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422
