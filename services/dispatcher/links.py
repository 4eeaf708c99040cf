"""faas.v1.DispatcherService: the worker and gateway streams, and the workers listing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from faas.v1 import dispatcher_pb2, dispatcher_pb2_grpc

from services.common.enrollment import EnrollmentError, Role, TokenFile, bearer_token
from services.common.function_cache import FunctionCache
from services.common.streams import drain
from services.common.timeutil import to_duration

from .core import Dispatcher
from .scheduler import Session

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

WorkerOutbox = asyncio.Queue[dispatcher_pb2.ConnectResponse | None]
GatewayOutbox = asyncio.Queue[dispatcher_pb2.LinkResponse | None]


class WorkerStream:
    """The :class:`~.scheduler.Link` of a worker's Connect stream: messages into its outbox."""

    def __init__(self, outbox: WorkerOutbox, cache: FunctionCache) -> None:
        self._outbox = outbox
        self._cache = cache

    def deliver(self, batch: dispatcher_pb2.AssignmentBatch) -> None:
        self._outbox.put_nowait(dispatcher_pb2.ConnectResponse(assignments=batch))

    def acknowledge(self, attempt_ids: list[str]) -> None:
        ack = dispatcher_pb2.OutcomeAck(attempt_ids=attempt_ids)
        self._outbox.put_nowait(dispatcher_pb2.ConnectResponse(ack=ack))

    def close(self) -> None:
        self._outbox.put_nowait(None)

    def sent(self, message: dispatcher_pb2.ConnectResponse) -> dispatcher_pb2.ConnectResponse:
        """``message`` as it goes on the stream: an assignment batch (merged, maybe, from
        several) keeps only the bodies the worker does not hold, and the mirror of the worker's
        cache then applies it, as the worker will."""
        if message.WhichOneof("kind") == "assignments":
            batch = message.assignments
            needed = set(self._cache.missing(body.function_id for body in batch.functions))
            if len(needed) != len(batch.functions):
                keep = []
                for body in batch.functions:
                    if body.function_id in needed:
                        needed.discard(body.function_id)  # the first copy of each only
                        keep.append(body)
                del batch.functions[:]
                batch.functions.extend(keep)
            self._cache.apply(batch)
        return message


class DispatcherServicer(dispatcher_pb2_grpc.DispatcherServiceServicer):
    """Serves workers' Connect streams and gateways' Link streams for one Dispatcher."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        path = dispatcher.settings.tokens_file
        self._tokens = TokenFile(path) if path is not None else None
        # Live streams by credential id, closed when their credential is revoked.
        self._by_credential: dict[str, asyncio.Queue[Any]] = {}
        self._revocations: asyncio.Task[None] | None = None
        if self._tokens is None:
            log.warning(
                "no --tokens-file: any process that reaches this port may act as a worker or a "
                "gateway (see the README's Security section)"
            )

    async def _admit(self, context: Context, role: Role) -> str | None:
        """The credential id the caller's token proves (None when the dispatcher runs open);
        aborts UNAUTHENTICATED without a valid token for ``role``."""
        if self._tokens is None:
            return None
        token = bearer_token(context.invocation_metadata())
        try:
            credential = self._tokens.verify(token, role)
        except (OSError, EnrollmentError) as exc:
            log.error("cannot read the tokens file: %s", exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the dispatcher cannot check tokens")
        if credential is None:
            log.warning(
                "refused a %s connection from %s: %s",
                role,
                context.peer(),
                ("no token" if token is None else "token not enrolled, revoked or of another role"),
            )
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"this dispatcher admits enrolled {role}s only: connect with the token "
                f"`faas tokens issue ID --role {role}` printed (authorization: Bearer)",
            )
        if self._revocations is None:
            self._revocations = asyncio.create_task(self._close_revoked())
        return credential.id

    async def _close_revoked(self) -> None:
        """Every second: streams whose credential left the tokens file end."""
        assert self._tokens is not None
        while True:
            await asyncio.sleep(1.0)
            try:
                enrolled = {c.id for c in self._tokens.credentials()}
            except (OSError, EnrollmentError) as exc:
                log.error("cannot read the tokens file: %s", exc)
                continue
            for credential_id in [c for c in self._by_credential if c not in enrolled]:
                log.warning("credential %s was revoked; closing its stream", credential_id)
                self._by_credential.pop(credential_id).put_nowait(None)

    async def Connect(
        self,
        request_iterator: AsyncIterator[dispatcher_pb2.ConnectRequest],
        context: Context,
    ) -> AsyncIterator[dispatcher_pb2.ConnectResponse]:
        dispatcher = self._dispatcher
        if dispatcher.stopping:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "dispatcher is shutting down")
        if dispatcher.settings.mode == "local":
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "dispatcher runs in local mode and takes no workers; start it with -m push or pull",
            )
        credential_id = await self._admit(context, "worker")
        settings = dispatcher.settings
        try:
            first = await asyncio.wait_for(
                anext(request_iterator, None), timeout=settings.hello_timeout_seconds
            )
        except TimeoutError:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no hello within {settings.hello_timeout_seconds:g} s",
            )
            return
        if first is None or not first.HasField("hello"):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a hello"
            )
            return
        hello = first.hello
        if credential_id is not None:  # the worker is who its credential says
            if hello.worker_id and hello.worker_id != credential_id:
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"this token is worker {credential_id}'s; the hello says {hello.worker_id}",
                )
            hello.worker_id = credential_id
        if not hello.worker_id or not 1 <= hello.capacity <= settings.max_worker_capacity:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"hello needs a worker_id and a capacity from 1 to {settings.max_worker_capacity}",
            )
        if dispatcher.live_session(hello.worker_id) is not None:
            log.warning("refused a second connection as worker %s", hello.worker_id)
            await context.abort(
                grpc.StatusCode.ALREADY_EXISTS,
                f"worker {hello.worker_id} is connected already; a worker id is one connection",
            )
        outbox: WorkerOutbox = asyncio.Queue()
        session = Session(
            worker_id=hello.worker_id,
            host=hello.host,
            pid=hello.pid,
            capacity=hello.capacity,
            mode=dispatcher.settings.mode,
            prefetch=dispatcher.settings.prefetch,
            runtime=hello.runtime,  # empty when the worker does not say: only for any Python
            labels=dict(hello.labels),
            resources=dict(hello.resources),
            function_cache=FunctionCache(hello.function_cache_bytes, keep_bodies=False),
        )
        stream = session.link = WorkerStream(outbox, session.function_cache)
        if credential_id is not None:
            self._by_credential[credential_id] = outbox
        kept = dispatcher.attach(session, list(hello.running_attempt_ids))
        log.info(
            "worker %s connected from %s pid %d with %d process(es), Python %s%s%s",
            hello.worker_id,
            hello.host,
            hello.pid,
            hello.capacity,
            hello.runtime.python_version or "unknown",
            "".join(f", {k}={v}" for k, v in sorted(hello.labels.items())),
            f", still running {len(kept)}" if kept else "",
        )
        reader = asyncio.create_task(self._read_worker(session, request_iterator, outbox))
        heartbeat = dispatcher_pb2.ConnectResponse(heartbeat=dispatcher_pb2.Heartbeat())
        try:
            yield dispatcher_pb2.ConnectResponse(
                welcome=dispatcher_pb2.Welcome(
                    heartbeat_interval=to_duration(dispatcher.settings.heartbeat_seconds),
                    mode=dispatcher.settings.mode,
                    max_credits=session.max_credits() if session.mode == "pull" else 0,
                )
            )
            async for message in drain(outbox, dispatcher.settings.heartbeat_seconds, heartbeat):
                yield stream.sent(message)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if credential_id is not None and self._by_credential.get(credential_id) is outbox:
                del self._by_credential[credential_id]
            reason = "its stream ended" if not session.draining else "it drained"
            await dispatcher.lose(session, reason)
            log.info("worker %s disconnected", session.worker_id)

    async def _read_worker(
        self,
        session: Session,
        requests: AsyncIterator[dispatcher_pb2.ConnectRequest],
        outbox: WorkerOutbox,
    ) -> None:
        dispatcher = self._dispatcher
        try:
            async for request in requests:
                session.last_seen = time.monotonic()
                kind = request.WhichOneof("kind")
                if kind == "starts":
                    dispatcher.started(session, request.starts.attempt_ids)
                elif kind == "outcomes":
                    dispatcher.report(session, request.outcomes.outcomes)
                elif kind == "work_request":
                    dispatcher.scheduler.grant(session, request.work_request.slots)
                    dispatcher.wake()
                elif kind == "drain":
                    log.info("worker %s is draining", session.worker_id)
                    dispatcher.drain(session)
        except grpc.aio.AioRpcError as exc:
            log.info("worker %s stream broke: %s", session.worker_id, exc.code().name)
        finally:
            outbox.put_nowait(None)

    async def Link(
        self,
        request_iterator: AsyncIterator[dispatcher_pb2.LinkRequest],
        context: Context,
    ) -> AsyncIterator[dispatcher_pb2.LinkResponse]:
        dispatcher = self._dispatcher
        if dispatcher.stopping:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "dispatcher is shutting down")
        credential_id = await self._admit(context, "gateway")
        outbox: GatewayOutbox = asyncio.Queue()
        if credential_id is not None:
            self._by_credential[credential_id] = outbox
        heartbeat = dispatcher_pb2.LinkResponse(heartbeat=dispatcher_pb2.Heartbeat())
        reader = asyncio.create_task(self._read_gateway(request_iterator, outbox))
        dispatcher.add_gateway(outbox)
        log.info("gateway linked")
        try:
            yield heartbeat
            async for message in drain(
                outbox, dispatcher.settings.heartbeat_seconds * 5, heartbeat
            ):
                yield message
        finally:
            dispatcher.remove_gateway(outbox)
            if credential_id is not None and self._by_credential.get(credential_id) is outbox:
                del self._by_credential[credential_id]
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            log.info("gateway unlinked")

    async def _read_gateway(
        self, requests: AsyncIterator[dispatcher_pb2.LinkRequest], outbox: GatewayOutbox
    ) -> None:
        try:
            async for request in requests:
                if request.HasField("tasks"):
                    self._dispatcher.submit(request.tasks.tasks)
        except grpc.aio.AioRpcError as exc:
            log.info("gateway stream broke: %s", exc.code().name)
        finally:
            outbox.put_nowait(None)

    async def ListConnectedWorkers(
        self,
        request: dispatcher_pb2.ListConnectedWorkersRequest,
        context: Context,
    ) -> dispatcher_pb2.ListConnectedWorkersResponse:
        await self._admit(context, "gateway")  # who runs where is for enrolled gateways only
        return dispatcher_pb2.ListConnectedWorkersResponse(
            workers=self._dispatcher.worker_stats(),
            mode=self._dispatcher.settings.mode,
            queued=self._dispatcher.scheduler.queued_count(),
        )
