"""The REST API tested the way the course's testing report does it, run with ``pytest tests``.

As in the report, the functions are defined at module level, so plain dill pickles them by
reference (``tests.test_webservice double``) and the workers import this module to run them.
tests/conftest.py starts the platform, with the REST API at http://127.0.0.1:8000/, for any
test module directly under tests/.
"""

import logging
import random
import time

import requests

from .serialize import deserialize, serialize

base_url = "http://127.0.0.1:8000/"

valid_statuses = ["QUEUED", "RUNNING", "COMPLETED", "FAILED"]

# Polls are bounded: a task on a loaded machine may take seconds, never this long.
POLL_SECONDS = 0.05
POLL_LIMIT = int(60 / POLL_SECONDS)


def double(x):
    return x * 2


def fail_on_purpose(x):
    raise ValueError(f"failed on purpose with {x}")


def register(fn):
    resp = requests.post(
        base_url + "register_function", json={"name": fn.__name__, "payload": serialize(fn)}
    )
    assert resp.status_code in [200, 201], resp.text
    return resp.json()["function_id"]


def execute(function_id, *args):
    resp = requests.post(
        base_url + "execute_function",
        json={"function_id": function_id, "payload": serialize((args, {}))},
    )
    assert resp.status_code in [200, 201], resp.text
    return resp.json()["task_id"]


def wait_for_result(task_id):
    """Polls /result/{task_id} (200 also while the task runs) until it is COMPLETED or FAILED."""
    for _ in range(POLL_LIMIT):
        resp = requests.get(f"{base_url}result/{task_id}")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["task_id"] == task_id
        assert body["status"] in valid_statuses
        if body["status"] in ["COMPLETED", "FAILED"]:
            logging.info("Task %s is now %s", task_id, body["status"])
            return body
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"task {task_id} did not finish in {POLL_LIMIT * POLL_SECONDS:.0f}s")


def test_fn_registration_invalid():
    # A payload that is not a serialized function.
    resp = requests.post(
        base_url + "register_function", json={"name": "hello", "payload": "payload"}
    )

    assert resp.status_code in [500, 400]


def test_fn_registration():
    resp = requests.post(
        base_url + "register_function", json={"name": "double", "payload": serialize(double)}
    )

    assert resp.status_code in [200, 201]
    assert "function_id" in resp.json()


def test_execute_fn():
    function_id = register(double)

    resp = requests.post(
        base_url + "execute_function",
        json={"function_id": function_id, "payload": serialize(((2,), {}))},
    )

    assert resp.status_code in [200, 201]
    assert "task_id" in resp.json()

    task_id = resp.json()["task_id"]
    resp = requests.get(f"{base_url}status/{task_id}")

    assert resp.status_code == 200
    assert resp.json()["task_id"] == task_id
    assert resp.json()["status"] in valid_statuses


def test_roundtrip():
    function_id = register(double)
    number = random.randint(0, 10000)
    task_id = execute(function_id, number)

    body = wait_for_result(task_id)

    assert body["status"] == "COMPLETED", body
    assert deserialize(body["result"]) == number * 2


def test_failure_is_a_failed_task_with_the_exception():
    function_id = register(fail_on_purpose)
    task_id = execute(function_id, 7)

    body = wait_for_result(task_id)

    assert body["status"] == "FAILED", body
    error = deserialize(body["result"])
    assert isinstance(error, ValueError)
    assert str(error) == "failed on purpose with 7"


def test_many_roundtrips_in_flight():
    function_id = register(double)
    numbers = [random.randint(0, 10000) for _ in range(20)]
    task_ids = [execute(function_id, number) for number in numbers]

    for task_id, number in zip(task_ids, numbers, strict=True):
        body = wait_for_result(task_id)
        assert body["status"] == "COMPLETED", body
        assert deserialize(body["result"]) == number * 2
