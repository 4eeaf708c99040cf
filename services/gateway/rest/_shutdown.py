"""The REST shim's stop: requests its grace period cut short answer 503 JSON, not a plain 500.

uvicorn's graceful stop waits for requests in flight (``--shutdown-grace``), then cancels them
and answers each cancelled request with a plain-text 500 "Internal Server Error". Every error of
the shim is JSON with a ``detail``, so a request cut short by the stop is a 503 instead: the shim
is unavailable, and the request may be retried once it (or another) is up.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CutShortAs503"]

logger = logging.getLogger(__name__)

_BODY = json.dumps({"detail": "the REST shim is shutting down; retry the request"}).encode()


class CutShortAs503:
    """ASGI wrapper: an HTTP request cancelled before its answer started gets a 503 JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if started:
                raise
            logger.warning(
                "%s %s: cut short by the shim's stop -> HTTP 503", scope["method"], scope["path"]
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_BODY)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _BODY})
            # Answered: the request ends here, as uvicorn meant by cancelling it.
