"""Prometheus metrics: each service's own registry, served on its own HTTP port at /metrics.

Every service builds its metrics in a ``CollectorRegistry`` of its own (never the global one, so
that tests running several services in one process do not mix them) and serves it with
:func:`serve_metrics`: a small asyncio HTTP server on the service's event loop, so that gauges
computed at scrape time read the service's state from the loop that owns it.

Names follow Prometheus conventions: the ``faas_`` prefix, ``_total`` for counters, ``_seconds``
for durations, and label sets bounded by the platform's shape (statuses, failure causes, gRPC
methods and codes, worker ids), never by its traffic (no task ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import generate_latest

from .grpc_server import PortInUse

__all__ = [
    "LATENCY_BUCKETS",
    "MetricsServer",
    "QueueAges",
    "cause_label",
    "queue_ages",
    "redis_errors",
    "serve_metrics",
]

log = logging.getLogger(__name__)

# Seconds: from a millisecond no-op up to an hour-long task.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)

# The longest request line and headers a scrape may send.
_MAX_REQUEST_BYTES = 16 * 1024
_READ_TIMEOUT_SECONDS = 10.0
# The text format every Prometheus reads (our names need none of 1.0.0's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def cause_label(cause: str) -> str:
    """A stored failure cause ("TIMEOUT", "" for none) as the ``cause`` label: as stored."""
    return cause.removeprefix("FAILURE_CAUSE_")


def redis_errors(registry: CollectorRegistry) -> Counter:
    """``faas_redis_errors_total{service}``: Redis calls that failed (unreachable, timed out)."""
    return Counter(
        "faas_redis_errors_total",
        "Redis calls that failed: Redis unreachable, timed out or refusing",
        ["service"],
        registry=registry,
    )


class QueueAges:
    """How long the queued tasks have waited: the oldest, and how many past a threshold."""

    __slots__ = ("oldest_seconds", "slow")

    def __init__(self, oldest_seconds: float, slow: int) -> None:
        self.oldest_seconds = oldest_seconds
        self.slow = slow


def queue_ages(now: float, queued_since: Iterable[float], slow_after: float) -> QueueAges:
    """The age of the oldest of the tasks queued at the times ``queued_since`` (0 with none),
    and how many have waited longer than ``slow_after`` seconds, at time ``now``."""
    oldest = 0.0
    slow = 0
    for since in queued_since:
        age = max(now - since, 0.0)
        oldest = max(oldest, age)
        if age > slow_after:
            slow += 1
    return QueueAges(oldest, slow)


class MetricsServer:
    """``GET /metrics`` of one registry over HTTP/1.1, on the running event loop."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listens on ``host:port`` (0: a free port); returns the port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await asyncio.wait_for(
                        reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_SECONDS
                    )
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                    return
                if len(head) > _MAX_REQUEST_BYTES:
                    return
                method, _, rest = head.decode("latin-1").partition(" ")
                path = rest.partition(" ")[0].partition("?")[0]
                if method not in ("GET", "HEAD"):
                    status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain"
                elif path != "/metrics":
                    status, body, kind = "404 Not Found", b"see /metrics\n", "text/plain"
                else:
                    status, body, kind = "200 OK", generate_latest(self._registry), CONTENT_TYPE
                header = (
                    f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                writer.write(header if method == "HEAD" else header + body)
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def serve_metrics(
    registry: CollectorRegistry, host: str, port: int | None, service: str
) -> MetricsServer | None:
    """Serves ``registry`` at ``http://host:port/metrics`` (None: metrics off); raises
    PortInUse when the port is taken."""
    if port is None:
        return None
    server = MetricsServer(registry)
    try:
        bound = await server.start(host, port)
    except OSError as exc:
        raise PortInUse(host, port, f"(--metrics-port) cannot be bound: {exc.strerror}") from None
    log.info("%s metrics on http://%s:%d/metrics", service, host, bound)
    return server
