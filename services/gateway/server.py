"""Assembles and runs the gateway: store, dispatcher link and gRPC server."""

from __future__ import annotations

import logging

from services.common import grpc_server, tls
from services.common.metrics import serve_metrics
from services.common.store import Keys, TaskStore, connect

from .dispatcher_link import DispatcherLink
from .handlers import SERVICE, add_gateway_service
from .metrics import GatewayMetrics
from .payload import PayloadChecker
from .servicer import GatewayServicer
from .settings import GatewaySettings
from .waiters import TaskWaiters

log = logging.getLogger(__name__)

SERVICE_NAME = SERVICE.full_name


async def serve(settings: GatewaySettings) -> None:
    """Runs the gateway until SIGTERM or SIGINT, then shuts down gracefully."""
    stop = grpc_server.stop_event_on_signals()
    store = TaskStore(
        connect(settings.redis_url, socket_timeout=settings.redis_timeout_seconds),
        Keys(settings.key_prefix),
    )
    channel = tls.open_channel(
        settings.dispatcher_target,
        grpc_server.CHANNEL_OPTIONS,
        tls.channel_credentials(settings.tls_ca, settings.tls_client_cert, settings.tls_client_key),
    )
    waiters = TaskWaiters()
    link = DispatcherLink(channel, waiters, settings.dispatcher_token)
    checker = PayloadChecker(
        settings.max_payload_bytes,
        processes=settings.payload_check_processes,
        max_pending_bytes=settings.max_pending_check_bytes,
    )
    metrics = GatewayMetrics() if settings.metrics_port is not None else None
    servicer = GatewayServicer(settings, store, link, waiters, channel, checker, metrics)
    credentials = tls.server_credentials(
        settings.tls_cert, settings.tls_key, settings.tls_client_ca
    )
    server, port, health = grpc_server.create_server(settings.address, [SERVICE_NAME], credentials)
    add_gateway_service(servicer, server, None if metrics is None else metrics.answered)
    await server.start()
    host = settings.address.rsplit(":", 1)[0]
    exporter = None
    if metrics is not None:
        exporter = await serve_metrics(metrics.registry, host, settings.metrics_port, "gateway")
    link.start()
    await grpc_server.set_serving(health, [SERVICE_NAME])
    log.info(
        "gateway listening on %s:%d (%s; dispatcher %s%s)",
        host,
        port,
        tls.describe(settings.tls_cert, settings.tls_client_ca),
        settings.dispatcher_target,
        " over TLS" if settings.tls_ca is not None else "",
    )
    try:
        await stop.wait()
        log.info("gateway shutting down")
        servicer.close()
        await grpc_server.graceful_stop(server, health, settings.shutdown_grace_seconds)
    finally:
        checker.close()
        await link.close()
        await channel.close()
        if exporter is not None:
            await exporter.close()
        await store.close()
