"""The dashboard: ``/ui`` (one page, its script and style from the package) and ``/ui/events``.

No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at run
time, and the key dependency is given by ``install_dashboard``'s caller.

``/ui/events`` streams server-sent events (``text/event-stream``): a JSON snapshot each second
(``_ui_snapshot``), made once per API key whatever the number of pages (``_ui_hub``). The page
reads it with ``fetch()``, which can send ``Authorization: Bearer KEY`` (EventSource cannot), so
a keyed gateway's key never goes in a URL. A key the gateway refuses is a 401 before the stream
starts, or an ``event: refused`` once it runs. Both are left out of the OpenAPI schema: the
page is not part of the API, and a stream that never ends is no endpoint for a fuzzer.
"""

import asyncio
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from services.gateway.rest._client import GatewayClient
from services.gateway.rest._errors import unauthenticated
from services.gateway.rest._ui_hub import DashboardBusy, Hub

__all__ = ["STREAM_SECONDS", "close_dashboard", "install_dashboard"]

STREAM_SECONDS: Final = 600.0
"""An event stream ends after this long; the page opens the next one at once."""
_FIRST_SNAPSHOT_SECONDS: Final = 15.0
_PACKAGE: Final = "services.gateway.rest"
# Everything the page loads is ours, from this origin: no CDN, no inline script.
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
_STREAM_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # a proxy in front must not buffer the stream
    "X-Content-Type-Options": "nosniff",
}


def _page() -> str:
    return resources.files(_PACKAGE).joinpath("static", "dashboard.html").read_text("utf-8")


def _hub(request: Request) -> Hub:
    hub = getattr(request.app.state, "ui_hub", None)
    if hub is None:
        client = request.app.state.gateway
        assert isinstance(client, GatewayClient)
        hub = request.app.state.ui_hub = Hub(client)
    assert isinstance(hub, Hub)
    return hub


def install_dashboard(app: FastAPI, api_key: Callable[..., Any]) -> None:
    """Adds ``/ui``, ``/ui/static/...`` and ``/ui/events`` to ``app``; ``api_key`` is the
    dependency that reads the caller's ``Authorization: Bearer`` key (None without one)."""
    page = _page()
    Key = Annotated[str | None, Depends(api_key)]

    @app.get("/ui", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/ui/events", include_in_schema=False)
    async def dashboard_events(request: Request, key: Key) -> Response:
        hub = _hub(request)
        try:
            subscription = hub.open(key)
        except DashboardBusy as exc:
            return JSONResponse(status_code=503, content={"detail": str(exc)})
        refusal = await subscription.first(_FIRST_SNAPSHOT_SECONDS)
        if refusal is not None:
            subscription.close()
            if refusal.status == 401:
                return unauthenticated(refusal.detail)
            return JSONResponse(status_code=refusal.status, content={"detail": refusal.detail})
        client = request.app.state.gateway
        assert isinstance(client, GatewayClient)
        return StreamingResponse(
            subscription.events(client.stopping, STREAM_SECONDS),
            media_type="text/event-stream",
            headers=_STREAM_HEADERS,
        )

    app.mount(
        "/ui/static",
        StaticFiles(packages=[(_PACKAGE, "static")]),
        name="ui-static",
    )


async def close_dashboard(app: FastAPI) -> None:
    """Stops the dashboard's producers (at the shim's shutdown)."""
    hub = getattr(app.state, "ui_hub", None)
    if isinstance(hub, Hub):
        await hub.close()
        await asyncio.sleep(0)
