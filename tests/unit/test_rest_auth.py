"""The REST shim's side of API keys and quotas, without a network: the key taken from the
``Authorization: Bearer`` header, 401 / 429 / 413 answers, the schema's security scheme, and the
callers table that keeps each key's coalescing and watch apart (bounded)."""

from __future__ import annotations

import asyncio
import codecs
from typing import Any

import dill
import grpc
import httpx
import pytest
from faas.v1 import gateway_pb2
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common import errors
from services.gateway.rest import RestSettings, create_app
from services.gateway.rest._callers import Caller, Callers, metadata_for
from services.gateway.rest._coalesce import ExecuteCoalescer
from services.gateway.rest._results import ResultWatch
from services.gateway.rest.app import _gateway

_B64 = codecs.encode(dill.dumps(((1,), {})), "base64").decode()


def _rich_error(error: errors.FaaSError) -> grpc.aio.AioRpcError:
    """The AioRpcError a client sees for ``error`` raised in the gateway."""
    status = errors.to_status(error)
    trailing = grpc.aio.Metadata(*status.trailing_metadata)
    return grpc.aio.AioRpcError(status.code, grpc.aio.Metadata(), trailing, status.details)


class _Gateway:
    """Stands in for GatewayClient: records the key of each call, raises ``error``."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        self.error: grpc.aio.AioRpcError | None = None

    def _call(self, key: str | None) -> None:
        self.keys.append(key)
        if self.error is not None:
            raise self.error

    async def execute_function(self, *args: Any, key: str | None = None) -> Any:
        self._call(key)
        return gateway_pb2.ExecuteFunctionResponse(task_id="t1")

    async def get_status(self, task_id: str, *, key: str | None = None) -> Any:
        self._call(key)
        return gateway_pb2.GetStatusResponse(task_id=task_id)


@pytest.fixture
def gateway() -> _Gateway:
    return _Gateway()


@pytest.fixture
def app(gateway: _Gateway) -> Any:
    app = create_app(RestSettings(gateway_target="127.0.0.1:1"))
    app.dependency_overrides[_gateway] = lambda: gateway
    return app


def _request(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://rest") as c:
            return await c.request(method, url, **kwargs)

    return asyncio.run(send())


def test_the_bearer_key_goes_to_the_gateway_and_no_header_sends_none(
    app: Any, gateway: _Gateway
) -> None:
    assert _request(app, "GET", "/status/t1").status_code == 200
    headers = {"Authorization": "Bearer faas_alice.secret"}
    assert _request(app, "GET", "/status/t1", headers=headers).status_code == 200
    body = {"function_id": "f1", "payload": _B64}
    assert _request(app, "POST", "/execute_function", json=body, headers=headers).status_code == 200
    # Another scheme is no key (a gateway with keys then answers API_KEY_MISSING).
    basic = {"Authorization": "Basic YTpi"}
    assert _request(app, "GET", "/status/t1", headers=basic).status_code == 200
    assert gateway.keys == [None, "faas_alice.secret", "faas_alice.secret", None]


@pytest.mark.parametrize("key", ["caf\u00e9", "x" * 5000])
def test_a_key_that_cannot_be_metadata_is_a_401_before_any_call(
    app: Any, gateway: _Gateway, key: str
) -> None:
    r = _request(app, "GET", "/status/t1", headers={"Authorization": f"Bearer {key}".encode()})
    assert r.status_code == 401
    assert "malformed API key" in r.json()["detail"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert gateway.keys == []


@pytest.mark.parametrize(
    ("reason", "challenge"),
    [("API_KEY_MISSING", 'Bearer realm="faas"'), ("API_KEY_INVALID", "invalid_token")],
)
def test_unauthenticated_is_401_with_a_bearer_challenge(
    app: Any, gateway: _Gateway, reason: str, challenge: str
) -> None:
    gateway.error = _rich_error(errors.Unauthenticated("no API key: give one", reason))
    r = _request(app, "GET", "/status/t1")
    assert (r.status_code, r.json()) == (401, {"detail": "no API key: give one"})
    assert challenge in r.headers["WWW-Authenticate"]
    if reason == "API_KEY_MISSING":
        assert "invalid_token" not in r.headers["WWW-Authenticate"]


@pytest.mark.parametrize(("delay", "header"), [(0.2, "1"), (1.0, "1"), (2.01, "3"), (0.0, "1")])
def test_a_quota_is_429_with_retry_after_in_whole_seconds_rounded_up(
    app: Any, gateway: _Gateway, delay: float, header: str
) -> None:
    gateway.error = _rich_error(errors.QuotaExceeded("over the rate", "RATE_LIMITED", delay))
    body = {"function_id": "f1", "payload": _B64}
    r = _request(app, "POST", "/execute_function", json=body)
    assert (r.status_code, r.json()) == (429, {"detail": "over the rate"})
    assert r.headers["Retry-After"] == header


def test_a_payload_over_the_limit_stays_413(app: Any, gateway: _Gateway) -> None:
    gateway.error = _rich_error(errors.PayloadTooLarge("too big", "PAYLOAD_TOO_LARGE"))
    r = _request(app, "POST", "/execute_function", json={"function_id": "f1", "payload": _B64})
    assert (r.status_code, r.json()) == (413, {"detail": "too big"})
    assert "Retry-After" not in r.headers


def test_a_quota_reason_without_retry_info_is_still_429(app: Any, gateway: _Gateway) -> None:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="OPEN_TASKS_LIMIT", domain="test"))
    status = status_pb2.Status(
        code=code_pb2.RESOURCE_EXHAUSTED, message="too many open", details=[info]
    )
    trailing = grpc.aio.Metadata(*rpc_status.to_status(status).trailing_metadata)
    gateway.error = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.aio.Metadata(), trailing, "too many open"
    )
    r = _request(app, "GET", "/status/t1")
    assert (r.status_code, r.headers["Retry-After"]) == (429, "1")


def test_the_schema_declares_the_bearer_scheme_and_the_401_and_429_answers(app: Any) -> None:
    schema = _request(app, "GET", "/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if path == "/healthz":
                assert "security" not in operation
                continue
            assert operation["security"] == [{"apiKey": []}], (path, method)
            assert {"401", "429"} <= set(operation["responses"]), (path, method)
            assert "Retry-After" in operation["responses"]["429"]["headers"]


# --- the callers table ----------------------------------------------------------------------


class _Sender:
    """Records which key each coalesced call carried and how many tasks it held."""

    def __init__(self, key: str | None, calls: list[tuple[str | None, int]]) -> None:
        self._key, self._calls = key, calls

    async def execute_function_call(self, request: Any) -> Any:
        self._calls.append((self._key, 1))
        await asyncio.sleep(0.01)
        return gateway_pb2.ExecuteFunctionResponse(task_id=f"{self._key}-{request.request_id}")

    async def execute_batch_call(self, request: Any) -> Any:
        self._calls.append((self._key, len(request.payloads)))
        await asyncio.sleep(0.01)
        ids = [f"{self._key}-{i}" for i in range(len(request.payloads))]
        return gateway_pb2.ExecuteBatchResponse(task_ids=ids)


def _no_stream(requests: Any) -> Any:
    raise AssertionError("no stream in these tests")


def _table(calls: list[tuple[str | None, int]], **options: Any) -> Callers:
    def make(key: str | None) -> Caller:
        return Caller(key, ExecuteCoalescer(_Sender(key, calls)), ResultWatch(_no_stream))

    return Callers(make, **options)


def test_concurrent_executes_of_two_keys_never_share_a_call() -> None:
    calls: list[tuple[str | None, int]] = []

    async def run() -> list[str]:
        table = _table(calls)
        jobs = [
            table.get(key).coalescer.execute("f", b"p", None, None)
            for _ in range(50)
            for key in ("alice", "bob")
        ]
        try:
            return list(await asyncio.gather(*jobs))
        finally:
            await table.close()

    ids = asyncio.run(run())
    assert ids[0::2] and all(i.startswith("alice-") for i in ids[0::2])
    assert all(i.startswith("bob-") for i in ids[1::2])
    assert sum(n for key, n in calls if key == "alice") == 50
    assert sum(n for key, n in calls if key == "bob") == 50
    assert any(n > 1 for _, n in calls), calls  # they were coalesced, per key


def test_the_table_keeps_one_caller_per_key_and_drops_idle_ones_past_its_bound() -> None:
    async def run() -> None:
        table = _table([], max_callers=3)
        first = table.get("k0")
        assert table.get("k0") is first and table.get(None) is not first
        for n in range(10):
            table.get(f"other{n}")
        assert len(table) == 3  # the least recently used idle callers went
        assert table.get("k0") is not first  # made anew
        await table.close()
        assert len(table) == 0

    asyncio.run(run())


def test_a_busy_caller_is_not_dropped() -> None:
    async def run() -> None:
        table = _table([], max_callers=1)
        busy = table.get("busy")
        pending = asyncio.ensure_future(busy.coalescer.execute("f", b"p", None, None))
        await asyncio.sleep(0)  # its call is in flight
        table.get("other")
        assert table.get("busy") is busy
        assert await pending == "busy-"
        await table.close()
        assert table.executes.requests == 1

    asyncio.run(run())


def test_metadata_presents_the_key_as_a_bearer_token() -> None:
    assert metadata_for(None) is None
    assert metadata_for("faas_a.b") == (("authorization", "Bearer faas_a.b"),)


def test_a_keyed_caller_is_vouched_for_only_shortly_after_a_call_took_its_key() -> None:
    caller = Caller("k", ExecuteCoalescer(_Sender("k", [])), ResultWatch(_no_stream))
    assert not caller.vouched(100.0)
    caller.verified = 100.0
    assert caller.vouched(100.5) and not caller.vouched(101.5)
    anonymous = Caller(None, ExecuteCoalescer(_Sender(None, [])), ResultWatch(_no_stream))
    assert anonymous.vouched(0.0)
