"""``/docs`` (Swagger UI) and ``/redoc`` with their assets served by the shim itself.

FastAPI's documented self-hosting: the app is made with ``docs_url=None, redoc_url=None`` and
these routes render ``get_swagger_ui_html`` / ``get_redoc_html`` pointing at local copies of the
JavaScript and CSS, which come from the ``fastapi-offline`` package (Swagger UI's bundle and
style, ReDoc's standalone bundle). Nothing is fetched from a CDN: no Google fonts, Swagger
UI's online validator badge is off and ReDoc's remote logo is replaced, so both pages work on a
machine without internet and ask nothing of another host.
"""

from functools import cache
from importlib import resources
from typing import Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "install_docs"]

ASSETS: Final = "/docs/assets"
"""Where the documentation pages' scripts, style and icon are served."""
_OAUTH2_REDIRECT: Final = "/docs/oauth2-redirect"
# ReDoc's side menu shows a logo from its makers' CDN (hidden when it fails to load): an empty
# picture instead, so the page asks nothing of another host.
_REDOC_LOGO: Final = "https://cdn.redoc.ly/redoc/logo-mini.svg"
_NO_LOGO: Final = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


@cache
def _redoc_js() -> bytes:
    """fastapi-offline's ReDoc bundle, with its one remote picture replaced."""
    bundle = resources.files("fastapi_offline").joinpath("static", "redoc.standalone.js")
    return bundle.read_text("utf-8").replace(_REDOC_LOGO, _NO_LOGO).encode()


def install_docs(app: FastAPI) -> None:
    """Adds ``/docs``, ``/redoc`` and their assets to ``app`` (made without its own)."""
    assert app.docs_url is None and app.redoc_url is None, "make the app with docs_url=None"
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(f"{ASSETS}/redoc.standalone.js", include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(_redoc_js(), media_type="text/javascript")

    app.mount(ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{_OAUTH2_REDIRECT}",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    @app.get(_OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
