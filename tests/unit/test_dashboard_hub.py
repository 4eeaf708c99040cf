"""Unit tests of the dashboard's producers (services/gateway/rest/_ui_hub.py) over an in-memory
gateway: one producer per key whatever the number of pages (a bounded number of calls), an
UNIMPLEMENTED call asked again only now and then, a refused key, producers that stop once their
pages are gone, and the bounds. Also the /ui page and the offline /docs and /redoc in process."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import grpc
import httpx
import pytest
from faas.v1 import common_pb2, gateway_pb2

from services.gateway.rest import RestSettings, create_app
from services.gateway.rest._ui_hub import CALLS_PER_SNAPSHOT, DashboardBusy, Hub


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class _Gateway:
    """The three calls a snapshot makes, counted by (method, key)."""

    def __init__(self, *, listings: bool = True, refused: frozenset[str] = frozenset()) -> None:
        self.calls: Counter[tuple[str, str | None]] = Counter()
        self.listings = listings
        self.refused = refused

    def _count(self, method: str, key: str | None) -> None:
        self.calls[method, key] += 1
        if key in self.refused:
            raise _rpc_error(grpc.StatusCode.UNAUTHENTICATED, "unknown API key")

    async def list_workers(self, *, key: str | None = None) -> gateway_pb2.ListWorkersResponse:
        self._count("ListWorkers", key)
        worker = common_pb2.WorkerStats(worker_id="w1", capacity=2, in_flight=1)
        return gateway_pb2.ListWorkersResponse(mode="push", queued=3, workers=[worker])

    async def list_tasks_call(
        self, request: gateway_pb2.ListTasksRequest, *, key: str | None = None
    ) -> gateway_pb2.ListTasksResponse:
        self._count("ListTasks", key)
        if not self.listings:
            raise _rpc_error(grpc.StatusCode.UNIMPLEMENTED, "ListTasks is not built yet")
        return gateway_pb2.ListTasksResponse(tasks=[common_pb2.TaskState(task_id="t1")])

    async def list_functions_call(
        self, request: gateway_pb2.ListFunctionsRequest, *, key: str | None = None
    ) -> gateway_pb2.ListFunctionsResponse:
        self._count("ListFunctions", key)
        if not self.listings:
            raise _rpc_error(grpc.StatusCode.UNIMPLEMENTED, "ListFunctions is not built yet")
        return gateway_pb2.ListFunctionsResponse()

    def total(self, key: str | None = None) -> int:
        return sum(n for (_, k), n in self.calls.items() if k == key)


async def _read(page: Any, count: int) -> list[dict[str, Any]]:
    """``count`` snapshots of a page's event stream."""
    snapshots = []
    stop = asyncio.Event()
    async for chunk in page.events(stop, 60.0):
        if chunk.startswith(b"event: snapshot\ndata: "):
            snapshots.append(json.loads(chunk.split(b"data: ", 1)[1]))
            if len(snapshots) == count:
                break
    return snapshots


def test_pages_of_one_key_share_one_producer_and_its_calls() -> None:
    async def scenario() -> None:
        gateway = _Gateway()
        hub = Hub(gateway, interval=0.05, linger=0.05)
        pages = [hub.open(None) for _ in range(5)]
        assert len(hub) == 1
        for page in pages:
            assert await page.first(5.0) is None
        results = await asyncio.gather(*(_read(page, 4) for page in pages))
        assert all(len(r) == 4 for r in results)
        assert results[0][0]["tasks"][0]["task_id"] == "t1"
        # Five pages read four snapshots each; the gateway made the calls of one page only.
        producer_snapshots = gateway.calls["ListWorkers", None]
        assert producer_snapshots <= 6
        assert gateway.total() == CALLS_PER_SNAPSHOT * producer_snapshots
        await hub.close()

    asyncio.run(scenario())


def test_each_key_has_its_own_producer_and_its_calls_carry_it() -> None:
    async def scenario() -> None:
        gateway = _Gateway()
        hub = Hub(gateway, interval=0.05)
        a, b = hub.open("key-a"), hub.open("key-b")
        assert len(hub) == 2
        assert await a.first(5.0) is None and await b.first(5.0) is None
        assert gateway.calls["ListWorkers", "key-a"] >= 1
        assert gateway.calls["ListWorkers", "key-b"] >= 1
        assert gateway.total(None) == 0
        await hub.close()

    asyncio.run(scenario())


def test_a_gateway_without_listings_is_asked_again_only_now_and_then() -> None:
    async def scenario() -> None:
        gateway = _Gateway(listings=False)
        hub = Hub(gateway, interval=0.02)
        page = hub.open(None)
        assert await page.first(5.0) is None
        snapshots = await _read(page, 10)
        last = snapshots[-1]
        assert last["tasks"] is None and last["functions"] is None
        assert last["workers"][0]["worker_id"] == "w1"
        assert last["queue"]["depth"] == 3
        assert last["missing"]["tasks"] == "this gateway has no ListTasks (UNIMPLEMENTED)"
        assert gateway.calls["ListWorkers", None] >= 10
        # Asked once (recent and queued: two ListTasks), then not again for RETRY_UNIMPLEMENTED.
        assert gateway.calls["ListTasks", None] == 2
        assert gateway.calls["ListFunctions", None] == 1
        await hub.close()

    asyncio.run(scenario())


def test_a_refused_key_is_a_401_and_its_producer_ends() -> None:
    async def scenario() -> None:
        gateway = _Gateway(refused=frozenset({"bad"}))
        hub = Hub(gateway, interval=0.02)
        page = hub.open("bad")
        refusal = await page.first(5.0)
        assert refusal is not None and (refusal.status, refusal.detail) == (401, "unknown API key")
        page.close()
        assert len(hub) == 0
        assert hub.pages == 0
        await hub.close()

    asyncio.run(scenario())


def test_a_key_refused_while_the_stream_runs_ends_it_with_a_refused_event() -> None:
    async def scenario() -> None:
        gateway = _Gateway()
        hub = Hub(gateway, interval=0.02)
        page = hub.open("revoked-soon")
        assert await page.first(5.0) is None
        events = []
        async for chunk in page.events(asyncio.Event(), 30.0):
            events.append(chunk)
            if chunk.startswith(b"event: snapshot"):
                gateway.refused = frozenset({"revoked-soon"})
        assert events[0] == b"retry: 2000\n\n"
        assert events[-1].startswith(b"event: refused\ndata: ")
        assert json.loads(events[-1].split(b"data: ", 1)[1]) == {
            "status": 401,
            "detail": "unknown API key",
        }
        assert hub.pages == 0 and len(hub) == 0
        await hub.close()

    asyncio.run(scenario())


def test_the_stream_ends_when_the_shim_stops_and_the_producer_after_its_pages() -> None:
    async def scenario() -> None:
        gateway = _Gateway()
        hub = Hub(gateway, interval=0.02, linger=0.05)
        page = hub.open(None)
        assert await page.first(5.0) is None
        stopping = asyncio.Event()
        seen = 0
        async for chunk in page.events(stopping, 30.0):
            seen += chunk.startswith(b"event: snapshot")
            if seen == 2:
                stopping.set()  # the shim stops: the stream ends at its next turn
        assert seen == 2
        assert hub.pages == 0
        for _ in range(200):
            if len(hub) == 0:
                break
            await asyncio.sleep(0.02)
        assert len(hub) == 0  # no page for longer than linger: the producer stopped
        calls = gateway.total()
        await asyncio.sleep(0.1)
        assert gateway.total() == calls  # and calls no more
        await hub.close()

    asyncio.run(scenario())


def test_pages_and_keys_are_bounded() -> None:
    async def scenario() -> None:
        hub = Hub(_Gateway(), interval=0.05, max_producers=2, max_pages=3)
        hub.open("a")
        hub.open("b")
        with pytest.raises(DashboardBusy, match="2 API keys"):
            hub.open("c")
        hub.open("a")
        with pytest.raises(DashboardBusy, match="3 dashboard pages"):
            hub.open("a")
        await hub.close()

    asyncio.run(scenario())


# --- the page and the docs, in process --------------------------------------------------


async def _get(path: str) -> httpx.Response:
    app = create_app(RestSettings(gateway_target="127.0.0.1:1"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rest") as client:
        return await client.get(path)


def test_the_page_and_its_assets_come_from_the_package() -> None:
    page = asyncio.run(_get("/ui"))
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    for asset in ("ui/static/dashboard.js", "ui/static/dashboard.css", "ui/static/favicon.svg"):
        assert f'"{asset}"' in page.text
        reply = asyncio.run(_get("/" + asset))
        assert reply.status_code == 200 and len(reply.content) > 100, asset
    assert "http" not in page.text.replace("http-equiv", "")  # no absolute URL: same origin
    schema = asyncio.run(_get("/openapi.json")).json()
    assert not [p for p in schema["paths"] if p.startswith("/ui")]


@pytest.mark.parametrize(
    ("path", "assets"),
    [
        ("/docs", ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css")),
        ("/redoc", ("/docs/assets/redoc.standalone.js",)),
    ],
)
def test_the_api_docs_load_their_assets_from_the_shim(path: str, assets: tuple[str, ...]) -> None:
    page = asyncio.run(_get(path))
    assert page.status_code == 200
    assert "cdn." not in page.text and "fonts.googleapis" not in page.text
    for asset in assets:
        assert asset in page.text
        reply = asyncio.run(_get(asset))
        assert reply.status_code == 200 and len(reply.content) > 10_000, asset
        assert b"cdn.redoc.ly" not in reply.content  # ReDoc's remote logo is replaced
