"""Schemathesis against the running REST shim's own OpenAPI schema, over real HTTP (issue 12).

Every operation of ``/openapi.json`` gets schema-valid (positive) and schema-violating (negative)
requests, and the payload endpoints also get valid base64 of hostile pickles. Whatever comes:
never a 5xx, every 4xx is JSON with a ``detail``, the answer conforms to the schema (status
code, content type, body), a hang fails the call's timeout, and a rejected request stores
nothing: the store's function, task and idempotency records are counted around every request.
The platform wants API keys (``make run --api-keys``) and every request carries the fuzzers' key.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.launcher import Platform, PlatformConfig
from tests.integration.fuzz_support import (
    FUZZ_SETTINGS,
    Credentials,
    Hostile,
    Records,
    StoredRecords,
    base64_text,
    credentials,
    hostile_pickles,
)
from tests.support import RestClient

pytestmark = [pytest.mark.fault, pytest.mark.slow]

# Every operation the shim serves, and whether it takes any input (a body or a parameter) that a
# negative case could break. test_every_operation_is_fuzzed fails when the schema changes.
OPERATIONS: dict[str, bool] = {
    "POST /register_function": True,
    "GET /functions/{function_id}": True,
    "POST /execute_function": True,
    "POST /execute_batch": True,
    "GET /status/{task_id}": True,
    "GET /result/{task_id}": True,
    "GET /logs/{task_id}": True,
    "GET /workers": False,
    "GET /tasks": True,
    "GET /functions": True,
    "DELETE /functions/{function_id}": True,
    "GET /healthz": False,
}
EXAMPLES = 50
HOSTILE_EXAMPLES = 100
HTTP_TIMEOUT = 90.0  # a long poll waits 60 s at most; past this the call hung
# positive_data_acceptance is left out on purpose: the schema types a payload as a string (its
# description says base64 of a pickle), so a schema-valid payload is almost never one the
# gateway takes, and a 400 for it is right.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """This module's platform: one push-mode worker, and API keys, as an exposed one has."""
    root: Path = tmp_path_factory.mktemp("fuzz-rest")
    platform = Platform(
        PlatformConfig(
            worker_processes=2,
            gateway_port=0,
            dispatcher_port=0,
            rest_port=0,
            data_dir=root / "data",
            log_dir=root / "logs",
            api_keys=True,
        )
    )
    platform.start()
    yield platform
    platform.stop()


@pytest.fixture(scope="module")
def caller(shared_platform: Platform) -> Credentials:
    return credentials(shared_platform)


@pytest.fixture(scope="module")
def schema(shared_platform: Platform, caller: Credentials) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(
        f"{shared_platform.rest_url}/openapi.json",
        config=SchemathesisConfig(),
        headers=dict(caller.headers),
        timeout=30,
    )


@pytest.fixture(scope="module")
def stored(shared_platform: Platform) -> Iterator[StoredRecords]:
    counter = StoredRecords(shared_platform)
    yield counter
    counter.close()


@pytest.fixture(scope="module")
def known_function(shared_platform: Platform, caller: Credentials) -> str:
    """A registered function, so that executes get past the 404 to their payload."""
    client = RestClient(shared_platform.rest_url, caller.api_key)
    try:
        return client.register(lambda x: x + 1, name="fuzz-target")
    finally:
        client.close()


@pytest.fixture(scope="module")
def known_ids(
    shared_platform: Platform, caller: Credentials, known_function: str
) -> dict[str, list[str]]:
    """Ids that name something, by path parameter: a function; tasks that COMPLETED, FAILED by
    raising, and FAILED on arguments that are no ((args), {kwargs}). All have ended."""

    def raises() -> None:
        raise RuntimeError("fuzz")

    client = RestClient(shared_platform.rest_url, caller.api_key)
    try:
        raising = client.register(raises, name="fuzz-raises")
        tasks = [
            client.execute(known_function, 1),
            client.execute(raising),
            _execute_raw(client, known_function, pickle.dumps("not a call")),
        ]
        ended = [client.wait_result(task_id) for task_id in tasks]
        assert [body["status"] for body in ended] == ["COMPLETED", "FAILED", "FAILED"], ended
        assert ended[1]["error"]["cause"] == "RAISED", ended[1]
        return {"function_id": [known_function, raising], "task_id": tasks}
    finally:
        client.close()


def _execute_raw(client: RestClient, function_id: str, payload: bytes) -> str:
    reply = client.http.post(
        "/execute_function",
        json={"function_id": function_id, "payload": base64_text(payload, mime=True)},
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["task_id"])


def _operation(schema: schemathesis.BaseSchema, label: str) -> Any:
    method, path = label.split(" ", 1)
    return schema[path][method]


def _with_body(case: Any, body: dict[str, Any]) -> Any:
    """A new case of ``case``'s operation with ``body`` (the drawn case stays small to print)."""
    return case.operation.Case(body=body, media_type=case.media_type)


def _assert_error_body(response: Any) -> None:
    """A 4xx is JSON whose ``detail`` says something (a string, or FastAPI's list of errors)."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict), response.text
        assert body.get("detail"), response.text


def _assert_stored(label: str, status: int, body: Any, before: Records, after: Records) -> None:
    """A rejected request stores nothing; an accepted one only the records it answered with."""
    if status >= 300:
        assert after == before, (
            f"{label} answered {status} but the store changed: {before} -> {after}"
        )
        return
    grew = (
        after.functions - before.functions,
        after.tasks - before.tasks,
        after.requests - before.requests,
    )
    if label == "POST /register_function":
        assert grew == (1, 0, 0), (label, grew)
    elif label == "POST /execute_function":
        assert grew[0] == 0 and 0 <= grew[1] <= 1 and 0 <= grew[2] <= 1, (label, grew)
    elif label == "POST /execute_batch":
        tasks = len(body["task_ids"])
        assert grew[0] == 0 and 0 <= grew[1] <= tasks and 0 <= grew[2] <= tasks, (label, grew)
    else:
        assert grew == (0, 0, 0), (label, grew)


def _runner(
    platform: Platform, caller: Credentials, stored: StoredRecords, label: str
) -> Callable[[Any], Any]:
    """Sends one case and checks its answer; returns the response."""

    def run(case: Any) -> Any:
        before = stored.now()
        response = case.call(
            base_url=platform.rest_url, headers=dict(caller.headers), timeout=HTTP_TIMEOUT
        )
        case.validate_response(response, checks=CHECKS, headers=dict(caller.headers))
        _assert_error_body(response)
        body = response.json() if response.status_code < 300 else None
        _assert_stored(label, response.status_code, body, before, stored.now())
        return response

    return run


def test_every_operation_is_fuzzed(schema: schemathesis.BaseSchema) -> None:
    served = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        served.add(f"{result.ok().method.upper()} {result.ok().path}")
    assert served == set(OPERATIONS)


@pytest.mark.parametrize(
    ("label", "mode"),
    [
        (label, mode)
        for label, has_input in OPERATIONS.items()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if has_input or mode is GenerationMode.POSITIVE
    ],
    ids=lambda value: value.value if isinstance(value, GenerationMode) else value,
)
def test_operation_answers_by_its_schema(
    shared_platform: Platform,
    schema: schemathesis.BaseSchema,
    caller: Credentials,
    stored: StoredRecords,
    label: str,
    mode: GenerationMode,
) -> None:
    operation = _operation(schema, label)
    run = _runner(shared_platform, caller, stored, label)
    examples = EXAMPLES if OPERATIONS[label] else 1

    @settings(FUZZ_SETTINGS, max_examples=examples)
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        run(case)

    fuzz()


@pytest.mark.parametrize(
    "label", ["GET /functions/{function_id}", "GET /status/{task_id}", "GET /result/{task_id}"]
)
def test_known_ids_answer_by_the_schema(
    shared_platform: Platform,
    schema: schemathesis.BaseSchema,
    caller: Credentials,
    stored: StoredRecords,
    known_ids: dict[str, list[str]],
    label: str,
) -> None:
    """The 200 bodies too (a result, a raised error, a bad payload's error) match the schema."""
    operation = _operation(schema, label)
    (name,) = (part.strip("{}") for part in label.split("/") if part.startswith("{"))
    run = _runner(shared_platform, caller, stored, label)
    cases = st.sampled_from(known_ids[name]).flatmap(
        lambda known: operation.as_strategy(path_parameters={name: known})
    )
    seen: set[int] = set()

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    @given(case=cases)
    def fuzz(case: Any) -> None:
        seen.add(run(case).status_code)

    fuzz()
    assert 200 in seen


@pytest.mark.parametrize("label", ["POST /register_function", "POST /execute_function"])
def test_hostile_pickles_are_answered_4xx_or_stored(
    shared_platform: Platform,
    schema: schemathesis.BaseSchema,
    caller: Credentials,
    stored: StoredRecords,
    known_function: str,
    label: str,
) -> None:
    """Valid base64 of hostile pickles: a 2xx (a task that fails on the worker) or a 4xx."""
    operation = _operation(schema, label)
    run = _runner(shared_platform, caller, stored, label)
    seen: set[int] = set()

    @settings(FUZZ_SETTINGS, max_examples=HOSTILE_EXAMPLES)
    @given(
        case=operation.as_strategy(),
        payload=hostile_pickles(),
        mime=st.booleans(),
        known=st.booleans(),
    )
    def fuzz(case: Any, payload: Hostile, mime: bool, known: bool) -> None:
        body = dict(case.body)
        body["payload"] = base64_text(payload.data, mime)
        if known and "function_id" in body:
            body["function_id"] = known_function
        seen.add(run(_with_body(case, body)).status_code)

    fuzz()
    assert {200, 400} <= seen, f"the payloads reached too few outcomes: {seen}"
    client = RestClient(shared_platform.rest_url, caller.api_key)
    try:
        assert client.run(known_function, 41) == 42  # the workers serve on
    finally:
        client.close()


def test_hostile_batches_are_answered_4xx_or_stored(
    shared_platform: Platform,
    schema: schemathesis.BaseSchema,
    caller: Credentials,
    stored: StoredRecords,
    known_function: str,
) -> None:
    label = "POST /execute_batch"
    run = _runner(shared_platform, caller, stored, label)
    small = hostile_pickles(near_limit=False)

    @settings(FUZZ_SETTINGS, max_examples=HOSTILE_EXAMPLES)
    @given(
        case=_operation(schema, label).as_strategy(),
        payloads=st.lists(small, min_size=1, max_size=5),
        mime=st.booleans(),
        known=st.booleans(),
    )
    def fuzz(case: Any, payloads: list[Hostile], mime: bool, known: bool) -> None:
        body = dict(case.body)
        body["payloads"] = [base64_text(payload.data, mime) for payload in payloads]
        if known:
            body["function_id"] = known_function
        run(_with_body(case, body))

    fuzz()
