"""Creating, serving and gracefully stopping the services' grpc.aio servers."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import signal
import socket
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024

SERVER_OPTIONS = [
    # gRPC sets SO_REUSEPORT by default: a second server on a busy port would start silently
    # and take half of the connections. A port belongs to one server.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
]

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


class PortInUse(OSError):
    """The port a server should listen on is taken; the message is one line naming it."""

    def __init__(self, host: str, port: int, detail: str = "is in use") -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {host or '*'} {detail}")
        self.host = host
        self.port = port
        self.detail = detail

    def __str__(self) -> str:
        return str(self.strerror)


_NOT_BOUND = "could not be bound (in use, or not an address of this host)"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback interface only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port_free(host: str, port: int) -> None:
    """Raises PortInUse when something listens on ``host:port`` (port 0 is always free).

    The probe sets SO_REUSEADDR as the servers do, so connections of a process that just died
    (TIME_WAIT) do not count, and a listening socket does.
    """
    if port == 0:
        return
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(
        host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUse(host, port) from None
                # Other errors (no IPv6 for "localhost", say) are left to the server's bind.


def create_server(
    address: str,
    service_names: Iterable[str],
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A server bound to ``address`` (port 0 picks a free one) with health and reflection on.

    With ``credentials`` (services.common.tls) the port speaks only TLS, health and reflection
    included. Returns the server, the bound port and the health servicer, whose statuses
    start SERVING. Raises PortInUse when the port is taken (by any process, another gRPC server
    included).
    """
    host, _, port_text = address.rpartition(":")
    check_port_free(host, int(port_text))
    server = grpc.aio.server(options=SERVER_OPTIONS)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:  # taken since the check, or not an address of this host
        raise PortInUse(host, int(port_text), _NOT_BOUND) from None
    if port == 0:
        raise PortInUse(host, int(port_text), _NOT_BOUND)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_names)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    return server, port, health_servicer


async def set_serving(health_servicer: health.aio.HealthServicer, names: Iterable[str]) -> None:
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, for a graceful shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def graceful_stop(
    server: grpc.aio.Server, health_servicer: health.aio.HealthServicer, grace: float
) -> None:
    """Reports NOT_SERVING, lets calls in progress finish for up to ``grace`` s, then stops."""
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace)
