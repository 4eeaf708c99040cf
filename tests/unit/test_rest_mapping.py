"""Unit tests of the REST shim's pure logic: code mapping, base64, enum names, body shapes.

The app-level tests swap the gateway client for an in-memory fake, so no network is used.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import json
from collections.abc import AsyncIterator
from typing import Any

import dill
import grpc
import httpx
import pytest
from faas.v1 import common_pb2, gateway_pb2

from services.gateway.limits import DEFAULT_MAX_PAYLOAD_BYTES, base64_chars, max_body_bytes
from services.gateway.rest import RestSettings, create_app
from services.gateway.rest._client import GatewayClient
from services.gateway.rest._codec import (
    INVALID_BASE64,
    InvalidPayloadError,
    decode_payload,
    encode_result,
)
from services.gateway.rest._convert import (
    cause_name,
    duration,
    function_body,
    result_body,
    status_name,
    workers_body,
)
from services.gateway.rest._errors import http_status_for, json_safe
from services.gateway.rest.app import _gateway

# --- status-code mapping -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "http"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INTERNAL, 502),
        (grpc.StatusCode.UNKNOWN, 502),
        (grpc.StatusCode.PERMISSION_DENIED, 502),
        (grpc.StatusCode.CANCELLED, 502),
        (None, 502),
    ],
)
def test_http_status_for(code: grpc.StatusCode | None, http: int) -> None:
    assert http_status_for(code) == http


def test_no_grpc_code_maps_to_500() -> None:
    assert all(http_status_for(code) != 500 for code in grpc.StatusCode)


# --- base64 --------------------------------------------------------------------------------

_DATA = bytes(range(256)) * 3  # long enough for several 76-character lines


def test_decode_mime_base64_with_newlines() -> None:
    text = codecs.encode(_DATA, "base64").decode()
    assert "\n" in text.strip()
    assert decode_payload(text) == _DATA


def test_decode_plain_base64_and_stray_whitespace() -> None:
    plain = base64.b64encode(_DATA).decode()
    assert decode_payload(plain) == _DATA
    assert decode_payload("  " + plain[:10] + "\r\n\t" + plain[10:] + "\n") == _DATA


def test_decode_dill_payload_like_a_client() -> None:
    obj = ((1, 2), {"x": "y"})
    text = codecs.encode(dill.dumps(obj), "base64").decode()
    assert dill.loads(decode_payload(text)) == obj


def test_decode_empty_is_empty_bytes() -> None:
    assert decode_payload("") == b""


@pytest.mark.parametrize(
    "text",
    ["not base64!", "abc", "YW*j", "YWJj\x00", "ÿÿÿÿ", "YQ==YQ=="],
)
def test_decode_invalid_base64(text: str) -> None:
    with pytest.raises(InvalidPayloadError, match=INVALID_BASE64):
        decode_payload(text)


def test_encode_result_matches_contract_serialize() -> None:
    raw = dill.dumps({"answer": 42, "blob": _DATA})
    text = encode_result(raw)
    assert text == codecs.encode(raw, "base64").decode()
    assert dill.loads(codecs.decode(text.encode(), "base64")) == {"answer": 42, "blob": _DATA}


# --- enums and durations -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (common_pb2.TASK_STATUS_QUEUED, "QUEUED"),
        (common_pb2.TASK_STATUS_RUNNING, "RUNNING"),
        (common_pb2.TASK_STATUS_COMPLETED, "COMPLETED"),
        (common_pb2.TASK_STATUS_FAILED, "FAILED"),
        (common_pb2.TASK_STATUS_UNSPECIFIED, "UNSPECIFIED"),
        (99, "UNSPECIFIED"),
    ],
)
def test_status_name(value: int, name: str) -> None:
    assert status_name(value) == name


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (common_pb2.FAILURE_CAUSE_RAISED, "RAISED"),
        (common_pb2.FAILURE_CAUSE_TIMEOUT, "TIMEOUT"),
        (common_pb2.FAILURE_CAUSE_PROCESS_DIED, "PROCESS_DIED"),
        (common_pb2.FAILURE_CAUSE_WORKER_LOST, "WORKER_LOST"),
        (common_pb2.FAILURE_CAUSE_BAD_PAYLOAD, "BAD_PAYLOAD"),
        (common_pb2.FAILURE_CAUSE_RESULT_NOT_SERIALIZABLE, "RESULT_NOT_SERIALIZABLE"),
        (common_pb2.FAILURE_CAUSE_UNSPECIFIED, "UNSPECIFIED"),
        (1234, "UNSPECIFIED"),
    ],
)
def test_cause_name(value: int, name: str) -> None:
    assert cause_name(value) == name


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.0, (0, 0)), (1.5, (1, 500_000_000)), (0.001, (0, 1_000_000)), (2.9999999999, (3, 0))],
)
def test_duration(seconds: float, expected: tuple[int, int]) -> None:
    d = duration(seconds)
    assert (d.seconds, d.nanos) == expected


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_duration_rejects_bad_values(seconds: float) -> None:
    with pytest.raises(ValueError):
        duration(seconds)


# --- body shapes ---------------------------------------------------------------------------


def _task(status: int, **kwargs: Any) -> common_pb2.TaskState:
    return common_pb2.TaskState(task_id="t1", function_id="f1", status=status, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [common_pb2.TASK_STATUS_QUEUED, common_pb2.TASK_STATUS_RUNNING])
def test_result_body_not_finished(status: int) -> None:
    body = result_body(_task(status)).model_dump()
    assert body == {"task_id": "t1", "status": status_name(status), "result": None, "error": None}


def test_result_body_completed() -> None:
    raw = dill.dumps(7)
    body = result_body(_task(common_pb2.TASK_STATUS_COMPLETED, result=raw)).model_dump()
    assert body["status"] == "COMPLETED"
    assert body["error"] is None
    assert dill.loads(codecs.decode(body["result"].encode(), "base64")) == 7


def test_result_body_failed() -> None:
    raw = dill.dumps(ValueError("boom"))
    error = common_pb2.TaskError(
        cause=common_pb2.FAILURE_CAUSE_RAISED, message="ValueError: boom", traceback="Traceback..."
    )
    body = result_body(_task(common_pb2.TASK_STATUS_FAILED, result=raw, error=error)).model_dump()
    assert list(body) == ["task_id", "status", "result", "error"]
    assert body["status"] == "FAILED"
    assert body["result"] == encode_result(raw)
    assert body["error"] == {
        "cause": "RAISED",
        "message": "ValueError: boom",
        "traceback": "Traceback...",
    }


def test_result_body_failed_without_result_or_error() -> None:
    body = result_body(_task(common_pb2.TASK_STATUS_FAILED)).model_dump()
    assert body["result"] == ""
    assert body["error"] == {"cause": "UNSPECIFIED", "message": "", "traceback": ""}


def test_workers_body() -> None:
    response = gateway_pb2.ListWorkersResponse(
        mode="push",
        queued=3,
        workers=[
            common_pb2.WorkerStats(
                worker_id="w1", host="h", pid=12, capacity=4, in_flight=1, assigned=9,
                completed=7, failed=1, mode="push", draining=True,
                runtime=common_pb2.Runtime(python_version="3.11.7", dill_version="0.4.1"),
                labels={"gpu": "h200"}, resources={"gpu": 1.0},
            )
        ],
    )  # fmt: skip
    assert workers_body(response).model_dump() == {
        "mode": "push",
        "queued": 3,
        "workers": [
            {
                "worker_id": "w1", "host": "h", "pid": 12, "capacity": 4, "in_flight": 1,
                "assigned": 9, "completed": 7, "failed": 1, "mode": "push", "draining": True,
                "runtime": {
                    "python_version": "3.11.7", "dill_version": "0.4.1", "pickle_protocol": 0,
                    "serializer": "", "cloudpickle_version": "",
                },
                "labels": {"gpu": "h200"}, "resources": {"gpu": 1.0},
            }
        ],
    }  # fmt: skip


# --- settings ------------------------------------------------------------------------------


def test_settings_from_env() -> None:
    assert RestSettings.from_env({}) == RestSettings()
    settings = RestSettings.from_env(
        {
            "FAAS_REST_HOST": "0.0.0.0",
            "FAAS_REST_PORT": "9000",
            "FAAS_GATEWAY_TARGET": "gw:1",
            "FAAS_INSECURE": "1",  # a non-loopback host needs HTTPS or this
        }
    )
    assert (settings.host, settings.port, settings.gateway_target) == ("0.0.0.0", 9000, "gw:1")
    assert (settings.call_timeout, settings.max_wait) == (10.0, 60.0)


@pytest.mark.parametrize("port", ["eighty", "70000", "-1"])
def test_settings_bad_port(port: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)port"):
        RestSettings.from_env({"FAAS_REST_PORT": port})


# --- the app, with an in-memory gateway ----------------------------------------------------


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class _FakeGateway:
    """Stands in for GatewayClient: records calls, answers from canned values."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.keys: list[str | None] = []  # the API key each call presented
        self.error: grpc.aio.AioRpcError | None = None
        self.task = _task(common_pb2.TASK_STATUS_RUNNING)
        self.serving = "SERVING"

    def last(self) -> tuple[str, tuple[Any, ...]]:
        return self.calls[-1]

    def _record(self, name: str, *args: Any, key: str | None = None) -> None:
        self.calls.append((name, args))
        self.keys.append(key)
        if self.error is not None:
            raise self.error

    async def register_function(
        self, *args: Any, key: str | None = None
    ) -> gateway_pb2.RegisterFunctionResponse:
        self._record("register_function", *args, key=key)
        return gateway_pb2.RegisterFunctionResponse(function_id="f1")

    async def execute_function(
        self, *args: Any, key: str | None = None
    ) -> gateway_pb2.ExecuteFunctionResponse:
        self._record("execute_function", *args, key=key)
        return gateway_pb2.ExecuteFunctionResponse(task_id="t1")

    async def execute_batch(
        self, *args: Any, key: str | None = None
    ) -> gateway_pb2.ExecuteBatchResponse:
        self._record("execute_batch", *args, key=key)
        return gateway_pb2.ExecuteBatchResponse(task_ids=["t1", "t2"])

    async def get_status(self, *args: Any, key: str | None = None) -> gateway_pb2.GetStatusResponse:
        self._record("get_status", *args, key=key)
        return gateway_pb2.GetStatusResponse(task_id=args[0], status=self.task.status)

    async def get_result(self, *args: Any, key: str | None = None) -> common_pb2.TaskState:
        self._record("get_result", *args, key=key)
        return self.task

    async def get_function(self, *args: Any, key: str | None = None) -> common_pb2.FunctionInfo:
        self._record("get_function", *args, key=key)
        return common_pb2.FunctionInfo(
            function_id=args[0],
            name="double",
            size_bytes=32,
            by_reference=True,
            module="mylib",
            qualname="double",
            runtime=common_pb2.Runtime(python_version="3.11.7", pickle_protocol=4),
            placement=common_pb2.Placement(labels={"gpu": "h200"}, resources={"gpu": 1.0}),
        )

    async def list_workers(self, key: str | None = None) -> gateway_pb2.ListWorkersResponse:
        self._record("list_workers", key=key)
        return gateway_pb2.ListWorkersResponse(mode="local", queued=0)

    async def health(self) -> str:
        self._record("health")
        return self.serving


@pytest.fixture
def fake() -> _FakeGateway:
    return _FakeGateway()


class _Client:
    """A synchronous face over httpx's in-process ASGI transport (no sockets, no lifespan)."""

    def __init__(self, transport: httpx.ASGITransport) -> None:
        self._transport = transport

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(transport=self._transport, base_url="http://rest") as c:
            return await c.request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return asyncio.run(self._send("GET", url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return asyncio.run(self._send("POST", url, **kwargs))


@pytest.fixture
def client(fake: _FakeGateway) -> _Client:
    app = create_app(RestSettings(gateway_target="127.0.0.1:1", max_wait=30.0))
    app.dependency_overrides[_gateway] = lambda: fake
    return _Client(httpx.ASGITransport(app=app, raise_app_exceptions=False))


_B64 = codecs.encode(dill.dumps(((1,), {})), "base64").decode()


def test_app_register_and_execute(client: _Client, fake: _FakeGateway) -> None:
    r = client.post("/register_function", json={"name": "f", "payload": _B64, "timeout": 2.5})
    assert (r.status_code, r.json()) == (200, {"function_id": "f1"})
    assert fake.last() == ("register_function", ("f", decode_payload(_B64), 2.5, None, None))
    runtime = {"python_version": "3.12.1", "dill_version": "0.4.1"}
    placement = {"labels": {"gpu": "h200"}, "resources": {"gpu": 1}}
    body = {"name": "f", "payload": _B64, "runtime": runtime, "placement": placement}
    assert client.post("/register_function", json=body).status_code == 200
    _, (_, _, _, sent_runtime, sent_placement) = fake.last()
    assert sent_runtime == common_pb2.Runtime(python_version="3.12.1", dill_version="0.4.1")
    assert sent_placement == common_pb2.Placement(labels={"gpu": "h200"}, resources={"gpu": 1.0})
    for bad in ({"resources": {"gpu": -1}}, {"labels": {"gpu": 1}}):
        r = client.post("/register_function", json={**body, "placement": bad})
        assert r.status_code == 422, r.text
    body = {"function_id": "f1", "payload": _B64, "request_id": "k"}
    r = client.post("/execute_function", json=body)
    assert (r.status_code, r.json()) == (200, {"task_id": "t1"})
    assert fake.last() == ("execute_function", ("f1", decode_payload(_B64), None, "k", None))
    r = client.post("/execute_batch", json={"function_id": "f1", "payloads": [_B64, _B64]})
    assert (r.status_code, r.json()) == (200, {"task_ids": ["t1", "t2"]})
    assert fake.last() == ("execute_batch", ("f1", [decode_payload(_B64)] * 2, None, None, None))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/execute_function", {"function_id": "f1", "payload": _B64}),
        ("/execute_batch", {"function_id": "f1", "payloads": [_B64]}),
    ],
)
def test_app_execution_placement(
    client: _Client, fake: _FakeGateway, path: str, body: dict[str, Any]
) -> None:
    placement = {"labels": {"zone": "b"}, "resources": {"gpu": 0.5}, "any_python": True}
    r = client.post(path, json={**body, "placement": placement})
    assert r.status_code == 200, r.text
    sent = fake.last()[1][-1]
    assert sent == common_pb2.Placement(
        labels={"zone": "b"}, resources={"gpu": 0.5}, any_python=True
    )
    assert client.post(path, json={**body, "placement": {}}).status_code == 200
    assert fake.last()[1][-1] == common_pb2.Placement()
    calls = len(fake.calls)
    for bad in (
        {"resources": {"gpu": -1}},
        {"labels": {"gpu": 1}},
        {"labels": ["gpu"]},
        {"any_python": "maybe"},
        {"label": {"gpu": "h200"}},  # misspelt: refused, not ignored
        "gpu=h200",
    ):
        r = client.post(path, json={**body, "placement": bad})
        assert r.status_code == 422, r.text
        assert isinstance(r.json()["detail"], list)
    content = json.dumps({**body, "placement": {"resources": {"gpu": 0}}})
    r = client.post(
        path,
        content=content.replace("0}", "NaN}").encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert len(fake.calls) == calls  # none reached the gateway


def test_app_schema_shows_the_execution_placement(client: _Client) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for body in ("ExecuteFunctionBody", "ExecuteBatchBody", "RegisterFunctionBody"):
        field = schemas[body]["properties"]["placement"]
        assert {"$ref": "#/components/schemas/PlacementBody"} in field["anyOf"], field
        assert field["description"]
    assert set(schemas["PlacementBody"]["properties"]) == {
        "labels",
        "resources",
        "any_python",
        "memory_limit_mb",
        "cpu_limit_seconds",
    }


def test_app_invalid_base64_is_400(client: _Client, fake: _FakeGateway) -> None:
    r = client.post("/execute_function", json={"function_id": "f1", "payload": "%%%"})
    assert (r.status_code, r.json()) == (400, {"detail": INVALID_BASE64})
    r = client.post("/execute_batch", json={"function_id": "f1", "payloads": [_B64, "%%%"]})
    assert r.status_code == 400
    assert r.json()["detail"].startswith(INVALID_BASE64)
    assert fake.calls == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "f"},
        {"name": "f", "payload": 5},
        {"name": "f", "payload": _B64, "timeout": 0},
        {"name": "f", "payload": _B64, "timeout": -1},
    ],
)
def test_app_bad_shape_is_422(client: _Client, body: dict[str, Any]) -> None:
    r = client.post("/register_function", json=body)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list)


@pytest.mark.parametrize(
    ("code", "http"),
    [
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.INTERNAL, 502),
    ],
)
def test_app_maps_grpc_errors(
    client: _Client, fake: _FakeGateway, code: grpc.StatusCode, http: int
) -> None:
    fake.error = _rpc_error(code, "the message")
    r = client.get("/status/t1")
    assert (r.status_code, r.json()) == (http, {"detail": "the message"})


def test_app_status_and_result(client: _Client, fake: _FakeGateway) -> None:
    r = client.get("/status/t9")
    assert (r.status_code, r.json()) == (200, {"task_id": "t9", "status": "RUNNING"})
    r = client.get("/result/t1", params={"wait": 1.5})
    assert r.status_code == 200
    assert r.json() == {"task_id": "t1", "status": "RUNNING", "result": None, "error": None}
    assert fake.last() == ("get_result", ("t1", 1.5))
    client.get("/result/t1")
    assert fake.last() == ("get_result", ("t1", None))


@pytest.mark.parametrize("wait", ["-1", "31", "nan", "soon"])
def test_app_bad_wait_is_422(client: _Client, wait: str) -> None:
    assert client.get("/result/t1", params={"wait": wait}).status_code == 422


def test_app_workers_and_health(client: _Client, fake: _FakeGateway) -> None:
    r = client.get("/workers")
    assert (r.status_code, r.json()) == (200, {"mode": "local", "queued": 0, "workers": []})
    assert client.get("/healthz").json() == {"status": "ok"}
    fake.serving = "NOT_SERVING"
    r = client.get("/healthz")
    assert (r.status_code, r.json()) == (503, {"detail": "gateway is NOT_SERVING"})
    fake.error = _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "slow")
    r = client.get("/healthz")
    assert (r.status_code, r.json()) == (503, {"detail": "slow"})


def test_app_unexpected_error_is_502(client: _Client, fake: _FakeGateway) -> None:
    fake.error = RuntimeError("bug")  # type: ignore[assignment]
    r = client.get("/workers")
    assert (r.status_code, r.json()) == (502, {"detail": "internal error in the REST shim"})


def test_app_get_function(client: _Client, fake: _FakeGateway) -> None:
    r = client.get("/functions/f1")
    assert r.status_code == 200, r.text
    assert fake.last() == ("get_function", ("f1",))
    assert r.json() == {
        "function_id": "f1",
        "name": "double",
        "size_bytes": 32,
        "timeout": None,
        "created_time": None,
        "runtime": {
            "python_version": "3.11.7",
            "dill_version": "",
            "pickle_protocol": 4,
            "serializer": "",
            "cloudpickle_version": "",
        },
        "by_reference": True,
        "module": "mylib",
        "qualname": "double",
        "placement": {
            "labels": {"gpu": "h200"},
            "resources": {"gpu": 1.0},
            "any_python": False,
            "memory_limit_mb": 0,
            "cpu_limit_seconds": 0.0,
        },
        "counts": {"submitted": 0, "completed": 0, "failed": 0},
    }
    fake.error = _rpc_error(grpc.StatusCode.NOT_FOUND, "function 'nope' not found")
    r = client.get("/functions/nope")
    assert (r.status_code, r.json()) == (404, {"detail": "function 'nope' not found"})


def test_function_body_times() -> None:
    info = common_pb2.FunctionInfo(function_id="f", name="n")
    info.timeout.FromMilliseconds(2500)
    info.created_time.FromMilliseconds(1_700_000_000_123)
    body = function_body(info)
    assert body.timeout == 2.5
    assert body.created_time == "2023-11-14T22:13:20.123000+00:00"


def test_app_docs(client: _Client) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/register_function",
        "/execute_function",
        "/execute_batch",
        "/status/{task_id}",
        "/result/{task_id}",
        "/workers",
        "/functions/{function_id}",
        "/functions",
        "/tasks",
        "/logs/{task_id}",
        "/healthz",
    }


def test_lifespan_opens_and_closes_the_channel() -> None:
    app = create_app(RestSettings(gateway_target="127.0.0.1:1"))

    async def run() -> None:
        async with app.router.lifespan_context(app):
            assert isinstance(app.state.gateway, GatewayClient)

    asyncio.run(run())


# --- hostile bodies: surrogates, non-finite numbers, oversized bodies --------------------------


@pytest.mark.parametrize(
    "content",
    [
        b'{"name": "\\ud800", "payload": "%s"}',
        b'{"name": "\\ud800"}',
        b'{"name": "f", "payload": "%s", "timeout": NaN}',
        b'{"name": "f", "payload": "%s", "timeout": -Infinity}',
        b'{"name": ["\\udfff", NaN], "payload": "%s"}',
    ],
)
def test_app_surrogates_and_nan_are_422(
    client: _Client, fake: _FakeGateway, content: bytes
) -> None:
    content = content.replace(b"%s", _B64.replace("\n", "").encode())
    r = client.post(
        "/register_function", content=content, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], list)
    assert fake.calls == []


def test_app_surrogate_in_a_payload_is_400(client: _Client, fake: _FakeGateway) -> None:
    r = client.post(
        "/execute_function",
        content=b'{"function_id": "f", "payload": "YWJj\\ud800"}',
        headers={"content-type": "application/json"},
    )
    assert (r.status_code, r.json()) == (400, {"detail": INVALID_BASE64})


def test_json_safe() -> None:
    value = {"a": ["\ud800", float("nan"), 1.5, (float("-inf"),)], "\udfff": None}
    assert json_safe(value) == {"a": ["\\ud800", "nan", 1.5, ["-inf"]], "\\udfff": None}


def test_max_body_bytes_fits_the_largest_payload_encoding() -> None:
    payload = b"\xff" * (3 * 1000 + 1)
    as_json = json.dumps({"payload": codecs.encode(payload, "base64").decode()}).encode()
    assert len(as_json) <= max_body_bytes(len(payload))
    assert base64_chars(len(payload)) == len(codecs.encode(payload, "base64"))
    assert max_body_bytes(16 * 1024 * 1024) < 25 * 1000 * 1000


def test_app_body_over_the_limit_is_413(client: _Client, fake: _FakeGateway) -> None:
    limit = max_body_bytes(DEFAULT_MAX_PAYLOAD_BYTES)
    r = client.post(
        "/register_function",
        content=b"{" + b" " * limit + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["detail"].endswith(f"over the limit of {limit} bytes")
    assert r.headers["connection"] == "close"

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "f", "payload": "'
        for _ in range(limit // (1024 * 1024) + 1):
            yield b"A" * (1024 * 1024)

    r = client.post("/register_function", content=chunks())
    assert r.status_code == 413
    assert "over the limit" in r.json()["detail"]
    assert fake.calls == []
