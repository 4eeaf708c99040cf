"""The async side of the client: one grpc.aio channel, retries with backoff, task watches.

Everything here runs on the client's loop thread (see ``_loop.py``).

Until the channel has connected once, a call waits only ``RetryPolicy.connect_budget()`` for
the gateway (3.5 s with the default policy) and then fails with the address it tried: nothing
listening there is a mistake to report, not an outage to ride out. Once connected, calls that
find the gateway UNAVAILABLE are retried with the whole backoff. The wait for the first
connection is logged (INFO, ``extra={"faas_connection": ..., "faas_target": ...}``) so that a
front end can say what is being tried: the CLI draws "connecting to ADDRESS ..." from it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc

from faas.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

from ._auth import bearer_interceptors
from .errors import ServiceUnavailable, from_rpc_error

__all__ = [
    "CHANNEL_OPTIONS",
    "CONNECTED",
    "CONNECTING",
    "RECONNECT_CODES",
    "UNREACHABLE",
    "RetryPolicy",
    "Transport",
    "status_lost",
]

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]

# The ``faas_connection`` values of the first connection's log records.
CONNECTING = "connecting"
CONNECTED = "connected"
UNREACHABLE = "unreachable"

# Before the first connection, each retry is worth this many seconds of waiting for it.
_CONNECT_SECONDS_PER_RETRY = 0.5
# How long the probe that finds out why the gateway cannot be reached may take.
_PROBE_SECONDS = 0.5

_TERMINAL = (common_pb2.TASK_STATUS_COMPLETED, common_pb2.TASK_STATUS_FAILED)
# A watch stream that ends this way is re-opened (after a backoff), not failed.
RECONNECT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)

# What grpc's asyncio client reports, in place of the server's status, for a bidirectional call
# the server ended while the client was still writing to it (its send fails first).
_LOST_STATUS_DETAILS = "Internal error from Core"


def status_lost(exc: grpc.aio.AioRpcError) -> bool:
    """Whether ``exc`` is grpc's stand-in for a stream status the client library lost.

    The server's own answer (UNAUTHENTICATED for a bad key, say) never reached the caller:
    measured with a bad key, 13 of 300 WatchTasks streams ended this way instead.
    """
    return exc.code() == grpc.StatusCode.INTERNAL and exc.details() == _LOST_STATUS_DETAILS


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often, and how patiently, calls are retried while the service is UNAVAILABLE.

    Attempt ``n`` (from 0) waits about ``min(max_backoff, backoff * 2**n)`` seconds first.
    """

    retries: int = 6
    backoff: float = 0.25
    max_backoff: float = 5.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("retries, backoff and max_backoff must be >= 0")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based), with a little jitter."""
        base = min(self.max_backoff, self.backoff * 2.0**attempt)
        return base * random.uniform(0.8, 1.0)

    def budget(self) -> float:
        """The longest the retries of one call wait in total, in seconds."""
        return sum(min(self.max_backoff, self.backoff * 2.0**n) for n in range(self.retries))

    def connect_budget(self) -> float:
        """How long a client that has never reached the gateway waits for it, in seconds.

        Half a second per retry (never more than ``budget()``), plus half a second for the
        attempt itself: 3.5 s with the defaults, where ``budget()`` is 12.75 s.
        """
        return min(self.budget(), _CONNECT_SECONDS_PER_RETRY * self.retries) + _PROBE_SECONDS


def _tls_failure(details: str, tls: bool) -> str:
    """What a failed connection's ``details`` say about TLS, in words; "" when nothing."""
    if "handshake failed" in details.lower():
        if "CERTIFICATE_VERIFY_FAILED" in details:
            return (
                "TLS handshake failed: its certificate is not signed by the CA given "
                "(tls_ca, --tls-ca, FAAS_TLS_CA)"
            )
        if "WRONG_VERSION_NUMBER" in details:
            return "TLS handshake failed: it does not speak TLS (drop tls_ca, FAAS_TLS_CA)"
        return "TLS handshake failed: " + details.rpartition("handshake failed")[2].strip(" :")
    if not tls and details.lower().endswith("socket closed"):
        return "socket closed (is it on TLS? give its CA: tls_ca, --tls-ca, FAAS_TLS_CA)"
    return ""


class Transport:
    """A grpc.aio channel to the gateway, its stub, and the policies for using them.

    Must be created and used on one running event loop.
    """

    def __init__(
        self,
        target: str,
        *,
        call_timeout: float,
        policy: RetryPolicy,
        stream_timeout: float,
        max_watches: int,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        api_key: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        if api_key:  # first, so that every call (streams included) carries the key
            interceptors = [*bearer_interceptors(api_key), *interceptors]
        self.target = target
        self.call_timeout = call_timeout
        self.policy = policy
        self.stream_timeout = stream_timeout
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(
                target, options=CHANNEL_OPTIONS, interceptors=list(interceptors) or None
            )
        else:  # TLS (_tls.py)
            self._channel = grpc.aio.secure_channel(
                target,
                credentials,
                options=CHANNEL_OPTIONS,
                interceptors=list(interceptors) or None,
            )
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)
        self._tls = credentials is not None
        self._watch_slots = asyncio.Semaphore(max_watches)
        self._reached = False  # whether the channel has been READY once

    async def close(self) -> None:
        await self._channel.close()

    async def unary(
        self,
        call: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> Resp:
        """One unary call; an idempotent one is retried with backoff while UNAVAILABLE.

        A call that is not idempotent first waits (within the retry budget) for the channel to
        connect and is then sent exactly once, so a failure never duplicates its effect.
        """
        await self.first_connection()
        attempt = 0
        while True:
            if not idempotent:
                await self._connected()
            try:
                return await call(request, timeout=timeout or self.call_timeout)
            except grpc.aio.AioRpcError as exc:
                retry = exc.code() == grpc.StatusCode.UNAVAILABLE and idempotent
                if not retry or attempt >= self.policy.retries:
                    raise from_rpc_error(exc, attempts=attempt + 1, target=self.target) from None
            delay = self.policy.delay(attempt)
            log.debug("%s unavailable; retry %d in %.2fs", self.target, attempt + 1, delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def first_connection(self) -> None:
        """Returns once the channel has connected (at once after the first time); if it does
        not within ``policy.connect_budget()``, ServiceUnavailable naming the address and why."""
        if self._reached:
            return
        state = self._channel.get_state(try_to_connect=True)
        if state != grpc.ChannelConnectivity.READY:
            budget = self.policy.connect_budget()
            self._log_connection(CONNECTING, "connecting to the gateway at %s", self.target)
            try:
                await asyncio.wait_for(self._channel.channel_ready(), budget)
            except TimeoutError:
                why = await self._why_unreachable()
                if why:
                    self._log_connection(UNREACHABLE, "cannot reach %s: %s", self.target, why)
                    raise ServiceUnavailable(
                        f"cannot reach the gateway at {self.target}: {why} (tried for "
                        f"{budget:.1f}s; is the platform running? `make run` starts it)",
                        code="UNAVAILABLE",
                    ) from None
        self._reached = True
        self._log_connection(CONNECTED, "connected to the gateway at %s", self.target)

    async def _why_unreachable(self) -> str:
        """Why the channel is not connected, from one health check sent without waiting for
        a connection ("connection refused", ...); "" if that check got an answer after all."""
        check = self._channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=bytes,  # b"": an empty HealthCheckRequest
            response_deserializer=bytes,
        )
        try:
            await check(b"", timeout=_PROBE_SECONDS)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return "no answer (still connecting)"
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                details = exc.details() or "unavailable"
                return _tls_failure(details, self._tls) or (
                    details.rpartition(": ")[2].strip(" []").lower() or details
                )
        return ""  # an answer (even UNIMPLEMENTED): the gateway is there now

    def _log_connection(self, event: str, message: str, *args: object) -> None:
        log.info(message, *args, extra={"faas_connection": event, "faas_target": self.target})

    async def _connected(self) -> None:
        """Returns once the channel is READY; ServiceUnavailable after the retry budget."""
        if self._channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY:
            return
        budget = max(self.policy.budget(), 0.1)
        try:
            await asyncio.wait_for(self._channel.channel_ready(), budget)
        except TimeoutError:
            raise ServiceUnavailable(
                f"could not connect to the gateway at {self.target} within {budget:.1f}s",
                code="UNAVAILABLE",
            ) from None

    async def watch(
        self, task_id: str, on_state: Callable[[common_pb2.TaskState], None]
    ) -> common_pb2.TaskState:
        """Follows the task's WatchTask stream until it ends; returns the terminal state.

        ``on_state`` sees every state streamed. A stream broken by a gateway restart is
        re-opened after a backoff (up to ``policy.retries`` times in a row); one that reaches
        ``stream_timeout`` is re-opened at once. No call polls.
        """
        await self.first_connection()
        request = gateway_pb2.WatchTaskRequest(task_id=task_id)
        failures = 0
        while True:
            async with self._watch_slots:
                try:
                    async for reply in self.stub.WatchTask(request, timeout=self.stream_timeout):
                        failures = 0
                        on_state(reply.task)
                        if reply.task.status in _TERMINAL:
                            return reply.task
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                        continue
                    if exc.code() not in RECONNECT_CODES or failures >= self.policy.retries:
                        raise from_rpc_error(
                            exc, attempts=failures + 1, target=self.target
                        ) from None
                else:  # the stream ended before the task did (a gateway going away)
                    if failures >= self.policy.retries:
                        raise ServiceUnavailable(
                            f"the watch of task {task_id} kept ending early", code="UNAVAILABLE"
                        )
            delay = self.policy.delay(failures)
            log.debug("watch of task %s broken; re-opening in %.2fs", task_id, delay)
            await asyncio.sleep(delay)
            failures += 1
