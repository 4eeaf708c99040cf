"""Results over REST: round trips, kwargs, large arguments, exceptions, long polls."""

from __future__ import annotations

import time

import pytest

from tests.support import RestClient, deserialize


def test_double_round_trip(rest: RestClient) -> None:
    def double(x: int) -> int:
        return x * 2

    function_id = rest.register(double, "double")
    for x in (0, 1, 21, -5, 10**30):
        assert rest.run(function_id, x) == 2 * x


def test_args_and_kwargs(rest: RestClient) -> None:
    def describe(a: int, b: int = 0, *rest_args: int, scale: int = 1, **extra: str) -> dict:
        return {"sum": (a + b + sum(rest_args)) * scale, "extra": extra}

    function_id = rest.register(describe)
    assert rest.run(function_id, 1, 2, 3, scale=10, tag="x") == {
        "sum": 60,
        "extra": {"tag": "x"},
    }


def test_closures_and_rich_values(rest: RestClient) -> None:
    offset = 100

    def shift(values: list[int]) -> set[int]:
        return {v + offset for v in values}

    assert rest.run(rest.register(shift), [1, 2, 3]) == {101, 102, 103}


def test_large_arguments_and_result(rest: RestClient) -> None:
    def reverse(data: bytes) -> bytes:
        return data[::-1]

    blob = bytes(range(256)) * (4 * 1024 * 4)  # 4 MiB
    assert rest.run(rest.register(reverse), blob) == blob[::-1]


def test_raising_function_fails_with_its_exception(rest: RestClient) -> None:
    def divide(a: int, b: int) -> float:
        return a / b

    body = rest.wait_result(rest.execute(rest.register(divide), 1, 0))
    assert body["status"] == "FAILED"
    error = deserialize(body["result"])
    assert isinstance(error, ZeroDivisionError)
    assert "division by zero" in str(error)
    assert body["error"]["cause"] == "RAISED"
    assert "ZeroDivisionError" in body["error"]["traceback"]


def test_result_before_the_end_is_200_with_null(rest: RestClient) -> None:
    def nap() -> str:
        import time

        time.sleep(2)
        return "awake"

    task_id = rest.execute(rest.register(nap))
    reply = rest.http.get(f"/result/{task_id}")
    assert reply.status_code == 200
    body = reply.json()
    assert body["task_id"] == task_id
    assert body["status"] in ("QUEUED", "RUNNING")
    assert body["result"] is None
    assert deserialize(rest.wait_result(task_id)["result"]) == "awake"


def test_long_poll_returns_when_the_task_ends(rest: RestClient) -> None:
    def nap(seconds: float) -> float:
        import time

        time.sleep(seconds)
        return seconds

    task_id = rest.execute(rest.register(nap), 0.5)
    started = time.monotonic()
    body = rest.result(task_id, wait=20)
    elapsed = time.monotonic() - started
    assert body["status"] == "COMPLETED"
    assert deserialize(body["result"]) == 0.5
    assert elapsed < 15  # returned on the event, not at the end of the wait


def test_unserializable_result_fails_clearly(rest: RestClient) -> None:
    def make_generator() -> object:
        return (i for i in range(3))

    body = rest.wait_result(rest.execute(rest.register(make_generator)))
    assert body["status"] == "FAILED"
    assert body["error"]["cause"] == "RESULT_NOT_SERIALIZABLE"
    assert isinstance(deserialize(body["result"]), Exception)


@pytest.mark.parametrize("value", [None, "text", 3.5, [1, {"a": (2, 3)}]])
def test_identity_on_various_values(rest: RestClient, value: object) -> None:
    def ident(x: object) -> object:
        return x

    assert rest.run(rest.register(ident), value) == value
