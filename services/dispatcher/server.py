"""Assembles and runs the dispatcher: store, engine, gRPC server and (local mode) its pool."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faas.v1 import dispatcher_pb2, dispatcher_pb2_grpc

from services.common import grpc_server, tls
from services.common.metrics import serve_metrics
from services.common.store import Keys, TaskStore, connect

from .core import Dispatcher
from .links import DispatcherServicer
from .settings import DispatcherSettings

log = logging.getLogger(__name__)

SERVICE_NAME = dispatcher_pb2.DESCRIPTOR.services_by_name["DispatcherService"].full_name


async def serve(settings: DispatcherSettings) -> None:
    """Runs the dispatcher until SIGTERM or SIGINT, then shuts down gracefully."""
    stop = grpc_server.stop_event_on_signals()
    store = TaskStore(
        connect(settings.redis_url, socket_timeout=settings.redis_timeout_seconds),
        Keys(settings.key_prefix),
        result_ttl=settings.result_ttl_seconds,
    )
    dispatcher = Dispatcher(settings, store)
    # The port first: a busy one fails before the local pool starts.
    credentials = tls.server_credentials(
        settings.tls_cert, settings.tls_key, settings.tls_client_ca
    )
    server, port, health = grpc_server.create_server(settings.address, [SERVICE_NAME], credentials)
    local = None
    if settings.mode == "local":
        from .local import LocalWorker  # imports the process pool only when it is used

        local = LocalWorker(dispatcher, settings.local_processes)
        await local.start()
    dispatcher_pb2_grpc.add_DispatcherServiceServicer_to_server(
        DispatcherServicer(dispatcher), server
    )
    await server.start()
    host = settings.address.rsplit(":", 1)[0]
    metrics = None
    if dispatcher.metrics is not None:
        metrics = await serve_metrics(
            dispatcher.metrics.registry, host, settings.metrics_port, "dispatcher"
        )
    engine = asyncio.create_task(dispatcher.run(), name="dispatcher")
    await grpc_server.set_serving(health, [SERVICE_NAME])
    extra = f" with {settings.local_processes} local processes" if local else ""
    security = tls.describe(settings.tls_cert, settings.tls_client_ca)
    log.info(
        "dispatcher (%s mode%s) listening on %s:%d (%s)", settings.mode, extra, host, port, security
    )
    try:
        await asyncio.wait(
            {engine, asyncio.create_task(stop.wait())}, return_when="FIRST_COMPLETED"
        )
        if engine.done():
            engine.result()  # surfaces a crash of the engine
        log.info("dispatcher shutting down")
        if local is not None:
            await local.stop(settings.shutdown_grace_seconds)
        dispatcher.stopping = True
        await grpc_server.graceful_stop(server, health, 1.0)
        await dispatcher.drain_writes(settings.shutdown_grace_seconds)
    finally:
        engine.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await engine
        if local is not None:
            await local.pool.close()
        if metrics is not None:
            await metrics.close()
        await store.close()
