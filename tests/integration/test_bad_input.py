"""Hostile and oversized input over real HTTP and gRPC: always a 4xx or a gRPC status, never a 5xx,
a reset connection or a stalled gateway."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dill
import grpc
import httpx
import pytest
from faas.v1 import gateway_pb2, gateway_pb2_grpc
from google.protobuf import duration_pb2

from services.common.errors import error_reason
from services.launcher import Platform
from tests.support import RestClient, serialize

# 16,000,004 bytes (under the 16 MiB limit) of one-byte opcodes: the slowest stream to walk.
OPCODE_FLOOD = b"\x80\x04" + b"N0" * 8_000_000 + b"N."


@pytest.fixture
def stub(shared_platform: Platform) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    with grpc.insecure_channel(
        shared_platform.gateway_target,
        options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
    ) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def _register(stub: gateway_pb2_grpc.GatewayServiceStub, fn: object) -> str:
    request = gateway_pb2.RegisterFunctionRequest(name="fn", payload=dill.dumps(fn))
    return str(stub.RegisterFunction(request, timeout=30).function_id)


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# --- a slow payload check never stalls the gateway ------------------------------------------


def test_slow_payload_checks_do_not_stall_other_calls(
    stub: gateway_pb2_grpc.GatewayServiceStub,
) -> None:
    def inc(x: int) -> int:
        return x + 1

    task_id = stub.ExecuteFunction(
        gateway_pb2.ExecuteFunctionRequest(
            function_id=_register(stub, inc), payload=dill.dumps(((1,), {}))
        ),
        timeout=30,
    ).task_id
    big_done: list[tuple[float, grpc.StatusCode, str]] = []

    def send_big() -> None:
        try:
            stub.RegisterFunction(
                gateway_pb2.RegisterFunctionRequest(name="flood", payload=OPCODE_FLOOD),
                timeout=200,
            )
        except grpc.RpcError as exc:
            big_done.append((time.monotonic(), exc.code(), error_reason(exc)))
        else:
            big_done.append((time.monotonic(), grpc.StatusCode.OK, ""))

    threads = [threading.Thread(target=send_big) for _ in range(4)]
    for thread in threads:
        thread.start()
    small: list[tuple[float, bool]] = []  # (end time, answered correctly)
    failures: list[str] = []
    while any(thread.is_alive() for thread in threads):
        try:
            status = stub.GetStatus(gateway_pb2.GetStatusRequest(task_id=task_id), timeout=60)
            ok = status.task_id == task_id and bool(_register(stub, inc))
        except grpc.RpcError as exc:
            ok = False
            failures.append(f"{exc.code()}: {exc.details()}")
        small.append((time.monotonic(), ok))
    for thread in threads:
        thread.join()

    # Each flood is walked to its end and refused as a value, not as a store outage.
    assert [(code, reason) for _, code, reason in big_done] == [
        (grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_NOT_FUNCTION")
    ] * 4
    assert not failures, failures[:5]
    assert all(ok for _, ok in small)
    first_big = min(end for end, _, _ in big_done)
    # While the first flood was being checked, the gateway kept answering small calls, many of
    # them (each is two round trips; one check walks 8 million opcodes).
    assert sum(1 for end, _ in small if end < first_big) >= 20, small[:5]


# --- request bodies over the limit -------------------------------------------------------------

_DECLARED = 300 * 1000 * 1000


def _chunks(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    chunk = b"a" * size
    for start in range(0, total, size):
        yield chunk[: total - start]


def test_huge_declared_body_is_413_before_it_is_read(
    shared_platform: Platform, rest: RestClient
) -> None:
    before = _rss_bytes(shared_platform.rest.pid)
    body = b'{"name": "x", "payload": "' + b"a" * 1000
    reply = httpx.post(
        f"{shared_platform.rest_url}/register_function",
        content=iter([body, *_chunks(_DECLARED - len(body))]),
        headers={"content-type": "application/json", "content-length": str(_DECLARED)},
        timeout=60,
    )
    assert reply.status_code == 413
    assert "limit" in reply.json()["detail"]
    assert _rss_bytes(shared_platform.rest.pid) < before + 64 * 1024 * 1024
    assert rest.http.get("/healthz").status_code == 200  # and the shim serves on


def test_huge_chunked_body_is_413(shared_platform: Platform, rest: RestClient) -> None:
    before = _rss_bytes(shared_platform.rest.pid)
    reply = httpx.post(
        f"{shared_platform.rest_url}/execute_batch",
        content=iter([b'{"function_id": "f", "payloads": ["', *_chunks(_DECLARED)]),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert reply.status_code == 413
    assert "limit" in reply.json()["detail"]
    assert _rss_bytes(shared_platform.rest.pid) < before + 96 * 1024 * 1024
    assert rest.http.get("/healthz").status_code == 200


def test_body_at_the_payload_limit_is_accepted(rest: RestClient) -> None:
    def size(x: bytes) -> int:
        return len(x)

    function_id = rest.register(size)
    blob = b"x" * (16 * 1024 * 1024 - 64)
    payload = serialize(((blob,), {}))  # MIME base64, newlines included: the largest encoding
    reply = rest.http.post(
        "/execute_function", json={"function_id": function_id, "payload": payload}
    )
    assert reply.status_code == 200, reply.text


# --- strings that are not Unicode, numbers that are not finite ---------------------------------

_RAW_BODIES = [
    ("/register_function", b'{"name": "\\ud800", "payload": "%s"}'),
    ("/register_function", b'{"name": "f", "payload": "\\udfff"}'),
    ("/register_function", b'{"name": "\\ud800"}'),
    ("/register_function", b'{"name": "f", "payload": "%s", "timeout": NaN}'),
    ("/register_function", b'{"name": "f", "payload": "%s", "timeout": Infinity}'),
    ("/register_function", b'{"name": "f", "payload": "%s", "timeout": -Infinity}'),
    ("/execute_function", b'{"function_id": "\\ud800", "payload": "%s"}'),
    ("/execute_function", b'{"function_id": "f", "payload": "%s", "request_id": "\\udc00"}'),
    ("/execute_function", b'{"function_id": "f", "payload": "%s", "timeout": NaN}'),
    ("/execute_batch", b'{"function_id": "f", "payloads": ["%s", "\\ud800"]}'),
    ("/execute_batch", b'{"function_id": "f", "payloads": ["%s"], "timeout": Infinity}'),
    ("/execute_batch", b'{"function_id": "\\ud800", "payloads": ["%s"], "request_id": "\\ud800"}'),
]


@pytest.mark.parametrize(("path", "template"), _RAW_BODIES)
def test_surrogates_and_non_finite_numbers_are_4xx(
    rest: RestClient, path: str, template: bytes
) -> None:
    payload = base64.b64encode(dill.dumps(len)).decode().encode()
    content = template.replace(b"%s", payload)
    reply = rest.http.post(path, content=content, headers={"content-type": "application/json"})
    assert reply.status_code in (400, 422), (reply.status_code, reply.text)
    assert reply.json()["detail"]
    assert rest.http.get("/healthz").status_code == 200


# --- gRPC: durations and malformed messages ----------------------------------------------------


@pytest.mark.parametrize(
    "timeout",
    [
        duration_pb2.Duration(seconds=1, nanos=-1),  # signs differ
        duration_pb2.Duration(seconds=-1, nanos=1),
        duration_pb2.Duration(seconds=0, nanos=1_000_000_000),  # |nanos| >= 1e9
        duration_pb2.Duration(seconds=0, nanos=-1_000_000_000),
        duration_pb2.Duration(seconds=315_576_000_001),  # past protobuf's 10,000 years
        duration_pb2.Duration(seconds=-315_576_000_001),
        duration_pb2.Duration(seconds=2**62),
    ],
)
def test_bad_durations_are_invalid_argument(
    stub: gateway_pb2_grpc.GatewayServiceStub, timeout: duration_pb2.Duration
) -> None:
    def f() -> int:
        return 1

    calls = [
        lambda: stub.RegisterFunction(
            gateway_pb2.RegisterFunctionRequest(name="f", payload=dill.dumps(f), timeout=timeout),
            timeout=30,
        ),
        lambda: stub.ExecuteFunction(
            gateway_pb2.ExecuteFunctionRequest(
                function_id=str(uuid.uuid4()), payload=dill.dumps(((), {})), timeout=timeout
            ),
            timeout=30,
        ),
        lambda: stub.ExecuteBatch(
            gateway_pb2.ExecuteBatchRequest(
                function_id=str(uuid.uuid4()), payloads=[dill.dumps(((), {}))], timeout=timeout
            ),
            timeout=30,
        ),
        lambda: stub.GetResult(
            gateway_pb2.GetResultRequest(task_id=str(uuid.uuid4()), wait=timeout), timeout=30
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert error_reason(caught.value) == "INVALID_DURATION"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xff\xff",  # a truncated varint tag
        b"\x0a\x05ab",  # a string field shorter than its length
        b"\x0a\x02\xed\xa0",  # name: invalid UTF-8 in a string field
        b"\x1a\x03\x08\x80\x80",  # timeout: a truncated nested message
        b"\x07",  # wire type 7 does not exist
    ],
)
def test_malformed_protobuf_is_invalid_argument(shared_platform: Platform, raw: bytes) -> None:
    with grpc.insecure_channel(shared_platform.gateway_target) as channel:
        for method in (
            "RegisterFunction",
            "ExecuteFunction",
            "GetStatus",
            "GetResult",
            "GetFunction",
        ):
            call = channel.unary_unary(
                f"/faas.v1.GatewayService/{method}",
                request_serializer=None,
                response_deserializer=None,
            )
            with pytest.raises(grpc.RpcError) as caught:
                call(raw, timeout=30)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (
                method,
                caught.value.code(),
                caught.value.details(),
            )
        watch = channel.unary_stream(
            "/faas.v1.GatewayService/WatchTask",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.RpcError) as caught:
            list(watch(raw, timeout=30))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- the OpenAPI schema states the limits the gateway enforces ---------------------------------


def test_openapi_schema_carries_the_limits(rest: RestClient) -> None:
    schema = rest.http.get("/openapi.json").json()
    schemas, paths = schema["components"]["schemas"], schema["paths"]

    def prop(model: str, name: str) -> dict[str, object]:
        field: dict[str, object] = schemas[model]["properties"][name]
        variants = field.get("anyOf")
        if isinstance(variants, list):  # an optional field: the non-null variant
            field = {**field, **next(v for v in variants if v.get("type") != "null")}
        return field

    register, execute, batch = (
        "RegisterFunctionBody",
        "ExecuteFunctionBody",
        "ExecuteBatchBody",
    )
    assert prop(register, "name")["maxLength"] == 256
    for model in (register, execute):
        payload = prop(model, "payload")
        assert payload["maxLength"] >= 4 * (16 * 1024 * 1024) // 3
        assert payload["minLength"] == 1
    for model in (register, execute, batch):
        timeout = prop(model, "timeout")
        assert timeout["exclusiveMinimum"] == 0
        assert timeout["maximum"] == 315_576_000_000
    for model in (execute, batch):
        assert prop(model, "function_id")["maxLength"] == 128
        assert prop(model, "function_id")["minLength"] == 1
    assert prop(execute, "request_id")["maxLength"] == 128
    assert prop(batch, "request_id")["maxLength"] == 100
    for path in ("/status/{task_id}", "/result/{task_id}"):
        (param,) = [p for p in paths[path]["get"]["parameters"] if p["name"] == "task_id"]
        assert (param["schema"]["minLength"], param["schema"]["maxLength"]) == (1, 128)
    payloads = prop(batch, "payloads")
    assert payloads["minItems"] == 1
    assert isinstance(payloads["maxItems"], int)
    assert payloads["items"]["maxLength"] >= 4 * (16 * 1024 * 1024) // 3  # type: ignore[index]
