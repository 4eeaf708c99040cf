"""The one gateway to Redis: every read and write of functions and tasks goes through here."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as aioredis
import redis.exceptions
from faas.v1 import common_pb2

from services.common.enrollment import DEFAULT_TENANT
from services.common.errors import StoreUnavailable

from . import scripts
from ._listing import Cursor, IndexWalker, Page, TaskFilter
from ._records import (
    AttemptOutcome,
    AttemptStart,
    CreatedTask,
    LostAttempt,
    NewTask,
    Presence,
    QueuedFailure,
    QueuedTask,
    Requeued,
    RequeueResult,
    RunningAttempt,
    TaskRecord,
)
from .keys import Keys

_RECORD_FIELDS = (
    "function_id",
    "status",
    "result",
    "cause",
    "message",
    "traceback",
    "attempts",
    "worker_id",
    "created",
    "started",
    "finished",
    "pending",
    "tenant",
    "output_bytes",
    "requeued",
)
# What a listing reads of each task: the record without its result (which may be MiBs).
_LISTED_FIELDS = tuple(name for name in _RECORD_FIELDS if name != "result")


# What the dispatcher reads to run a QUEUED task.
_QUEUED_FIELDS = ("status", "function_id", "payload", "timeout", "placement", "runtime", "pending")

_FUNCTION_FIELDS = (
    "name",
    "timeout",
    "created",
    "by_reference",
    "module",
    "qualname",
    "runtime",
    "placement",
    "tenant",
    "submitted",
    "completed",
    "failed",
)


@dataclass(frozen=True, slots=True)
class FunctionRecord:
    """A registered function as stored, without its payload.

    ``by_reference`` says the payload holds only ``module`` and ``qualname`` (it runs only where
    the module imports); ``runtime`` is what the client said it serialized the function with,
    plus the pickle protocol read from the stream; ``placement``, what its tasks need of a
    worker. A function stored before these were recorded reads as by value, with empty ones,
    and as the default tenant's.
    """

    function_id: str
    name: str
    size_bytes: int
    timeout: float | None
    created_ms: int
    by_reference: bool = False
    module: str = ""
    qualname: str = ""
    runtime: common_pb2.Runtime = field(default_factory=common_pb2.Runtime)
    placement: common_pb2.Placement = field(default_factory=common_pb2.Placement)
    tenant: str = DEFAULT_TENANT
    # Its tasks so far: stored, and ended COMPLETED or FAILED (counted since listings exist).
    submitted: int = 0
    completed: int = 0
    failed: int = 0


P = ParamSpec("P")
# What clients are told (the gateway answers UNAVAILABLE with it); the cause is chained.
_UNAVAILABLE = "the task store (Redis) is unavailable"
R = TypeVar("R")


class StoreFailed(StoreUnavailable):
    """Redis answered with an error (out of memory, read-only, a script error): unlike a lost
    or timed-out connection, trying the same call again at once is not expected to help."""


def _translated(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """``method`` with Redis's errors raised as the platform's own: :class:`StoreUnavailable`
    when Redis cannot be reached or does not answer in time, :class:`StoreFailed` when it
    answers with an error. So no service needs to know redis-py's exceptions."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailable(_UNAVAILABLE, "STORE_UNAVAILABLE") from exc
        except redis.exceptions.RedisError as exc:
            raise StoreFailed(_UNAVAILABLE, "STORE_UNAVAILABLE") from exc

    return call


def _now_ms() -> int:
    return int(time.time() * 1000)


def _timeout_arg(timeout: float | None) -> str:
    return "" if timeout is None or timeout <= 0 else repr(float(timeout))


def _timeout_value(raw: bytes | str | None) -> float | None:
    if raw in (None, b"", ""):
        return None
    value = float(raw)
    return value if value > 0 else None


def _text(raw: bytes | None) -> str:
    return raw.decode() if raw else ""


def _int(raw: bytes | None) -> int:
    return int(raw) if raw else 0


def _tenant(raw: bytes | None) -> str:
    return raw.decode() if raw else DEFAULT_TENANT


def _others(raw: bytes | None, tenant: str | None) -> bool:
    """Whether a record of tenant ``raw`` is hidden from a caller of ``tenant`` (None: sees
    every tenant's)."""
    return tenant is not None and _tenant(raw) != tenant


def connect(url: str, *, socket_timeout: float = 5.0, max_connections: int = 64) -> aioredis.Redis:
    """A client for ``url`` whose calls fail within ``socket_timeout`` when Redis is away.

    Connections come from a bounded pool; a call waits (up to ``socket_timeout``) for a free one
    instead of failing, so a burst of concurrent requests queues rather than erroring.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        decode_responses=False,
    )
    return aioredis.Redis.from_pool(pool)


class TaskStore:
    """Functions and tasks in Redis, with atomic (Lua) batch state changes.

    Every function and task belongs to a tenant. A read given a ``tenant`` answers None for
    another tenant's record, exactly as for an id that does not exist (the gateway's reads);
    the dispatcher's side reads and writes every tenant's alike.

    Errors: every method raises :class:`~services.common.errors.StoreUnavailable` when Redis
    cannot be reached or does not answer within the timeout, and its subclass
    :class:`StoreFailed` when Redis answers with an error; both map to UNAVAILABLE.
    """

    def __init__(
        self, client: aioredis.Redis, keys: Keys | None = None, result_ttl: float = 0.0
    ) -> None:
        self.client = client
        self.keys = keys or Keys()
        # How long a terminal task (and its result) is kept; 0 keeps it for good.
        self._result_ttl_ms = int(result_ttl * 1000)
        self._create = client.register_script(scripts.CREATE_TASKS)
        self._start = client.register_script(scripts.START_ATTEMPTS)
        self._finish = client.register_script(scripts.FINISH_ATTEMPTS)
        self._requeue = client.register_script(scripts.REQUEUE_ATTEMPTS)
        self._fail_queued = client.register_script(scripts.FAIL_QUEUED)
        self._set_pending = client.register_script(scripts.SET_PENDING)
        self._delete_function = client.register_script(scripts.DELETE_FUNCTION)
        self._walker = IndexWalker(client)

    async def close(self) -> None:
        await self.client.aclose()

    @_translated
    async def ping(self) -> bool:
        return bool(await self.client.ping())

    # Functions

    @_translated
    async def register_function(
        self,
        function_id: str,
        name: str,
        payload: bytes,
        timeout: float | None,
        *,
        by_reference: bool = False,
        module: str = "",
        qualname: str = "",
        runtime: common_pb2.Runtime | None = None,
        placement: common_pb2.Placement | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        """Stores a function with what the gateway found out about it (see FunctionRecord), and
        adds it to its tenant's functions index in the same MULTI."""
        created = _now_ms()
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.keys.function(function_id),
                mapping={
                    "name": name,
                    "payload": payload,
                    "timeout": _timeout_arg(timeout),
                    "created": created,
                    "by_reference": "1" if by_reference else "0",
                    "module": module,
                    "qualname": qualname,
                    "runtime": runtime.SerializeToString() if runtime is not None else b"",
                    "placement": placement.SerializeToString() if placement is not None else b"",
                    "tenant": tenant,
                },
            )
            pipe.zadd(self.keys.tenant_functions(tenant), {function_id: created})
            await pipe.execute()

    @_translated
    async def get_function(
        self, function_id: str, tenant: str | None = None
    ) -> FunctionRecord | None:
        """The function without its payload, or None when there is no such function (of
        ``tenant``, when given)."""
        key = self.keys.function(function_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(key, list(_FUNCTION_FIELDS))
            pipe.hstrlen(key, "payload")
            values, size = await pipe.execute()
        return _function(function_id, values, size, tenant)

    @_translated
    async def get_function_payload(self, function_id: str) -> bytes | None:
        raw = await self.client.hget(self.keys.function(function_id), "payload")
        return cast("bytes | None", raw)

    @_translated
    async def delete_function(self, function_id: str, tenant: str | None = None) -> int | None:
        """Deletes a function that has no QUEUED or RUNNING task: 0 when deleted, the number of
        its open tasks when it has some (nothing deleted), None when there is no such function
        (of ``tenant``, when given). Its tasks' records stay."""
        answer = await self._delete_function(
            keys=[self.keys.function(function_id), self.keys.function_tasks(function_id)],
            args=[tenant or "", DEFAULT_TENANT, self.keys.prefix],
        )
        return None if int(answer) < 0 else int(answer)

    # Listings (see _listing)

    @_translated
    async def list_tasks(
        self,
        tenant: str,
        filters: TaskFilter,
        *,
        page_size: int,
        budget: int,
        cursor: Cursor | None = None,
        scope: str | None = None,
    ) -> Page[TaskRecord]:
        """A page of ``tenant``'s tasks that match ``filters``, newest first, without their
        results; from the function's index when ``filters`` names one. ``scope`` None lets a
        function's tasks of any tenant through (an open gateway's reads)."""
        if filters.function_id:
            index = self.keys.function_tasks(filters.function_id)
        else:
            index = self.keys.tenant_tasks(tenant)
            scope = tenant

        async def read(task_ids: Sequence[str]) -> list[tuple[bool, TaskRecord | None]]:
            async with self.client.pipeline(transaction=False) as pipe:
                for task_id in task_ids:
                    pipe.hmget(self.keys.task(task_id), list(_LISTED_FIELDS))
                rows = await pipe.execute()
            out: list[tuple[bool, TaskRecord | None]] = []
            for task_id, row in zip(task_ids, rows, strict=True):
                values = dict(zip(_LISTED_FIELDS, row, strict=True))
                record = _record(task_id, [values.get(f) for f in _RECORD_FIELDS], scope)
                if record is not None and not filters.matches(record):
                    record = None
                out.append((values["status"] is not None, record))
            return out

        return await self._walker.page(
            index,
            read,
            page_size=page_size,
            budget=budget,
            cursor=cursor,
            after_ms=filters.created_after_ms,
            before_ms=filters.created_before_ms,
        )

    @_translated
    async def list_functions(
        self, tenant: str, *, page_size: int, budget: int, cursor: Cursor | None = None
    ) -> Page[FunctionRecord]:
        """A page of ``tenant``'s functions, newest first, with their counts."""

        async def read(function_ids: Sequence[str]) -> list[tuple[bool, FunctionRecord | None]]:
            async with self.client.pipeline(transaction=False) as pipe:
                for function_id in function_ids:
                    key = self.keys.function(function_id)
                    pipe.hmget(key, list(_FUNCTION_FIELDS))
                    pipe.hstrlen(key, "payload")
                rows = await pipe.execute()
            out: list[tuple[bool, FunctionRecord | None]] = []
            for i, function_id in enumerate(function_ids):
                values, size = rows[2 * i], rows[2 * i + 1]
                out.append((values[2] is not None, _function(function_id, values, size, tenant)))
            return out

        return await self._walker.page(
            self.keys.tenant_functions(tenant),
            read,
            page_size=page_size,
            budget=budget,
            cursor=cursor,
        )

    # Tasks: the gateway's side

    @_translated
    async def create_tasks(
        self, tasks: Sequence[NewTask], *, max_open: int | None = None, whole: bool = False
    ) -> list[CreatedTask | None]:
        """Stores tasks as QUEUED; ``None`` in place of a task whose function does not exist or
        is another tenant's. A request id is the task's tenant's own.

        With ``max_open`` (0: no limit), each task is kept in its tenant's open set until it is
        terminal, and a task that would take its tenant over ``max_open`` open tasks is not
        stored (``over_quota``); with ``whole``, ``tasks`` are one request, stored all or none.
        """
        if not tasks:
            return []
        keys: list[str] = [self.keys.queued]
        args: list[Any] = [
            _now_ms(),
            "0" if max_open is None else "1",
            max_open or 0,
            "1" if whole else "0",
            DEFAULT_TENANT,
        ]
        for task in tasks:
            task_key = self.keys.task(task.task_id)
            request_key = (
                self.keys.request(task.request_id, task.tenant) if task.request_id else task_key
            )
            # Redis checks the keys a script is given against the caller's ACL: the open set
            # is passed only when counting (else the task key again, untouched).
            open_key = self.keys.open_tasks(task.tenant) if max_open is not None else task_key
            keys += [self.keys.function(task.function_id), task_key, request_key, open_key]
            args += [
                task.task_id,
                task.function_id,
                task.payload,
                _timeout_arg(task.timeout),
                "1" if task.request_id else "0",
                task.placement,
                task.runtime,
                task.tenant,
            ]
        rows = await self._create(keys=keys, args=args)
        out: list[CreatedTask | None] = []
        for task_id, timeout, created in rows:
            if created == b"3":
                out.append(CreatedTask("", None, created=False, over_quota=True))
            elif not task_id:
                out.append(None)
            else:
                out.append(
                    CreatedTask(
                        task_id.decode(),
                        _timeout_value(timeout),
                        created=created == b"1",
                        conflict=created == b"2",
                    )
                )
        return out

    @_translated
    async def get_status(self, task_id: str) -> str | None:
        raw = await self.client.hget(self.keys.task(task_id), "status")
        return _text(cast("bytes | None", raw)) or None

    @_translated
    async def get_status_reason(
        self, task_id: str, tenant: str | None = None
    ) -> tuple[str, str] | None:
        """A task's status and, while it is QUEUED, why it waits ("" when only for a worker)."""
        raw = await self.client.hmget(self.keys.task(task_id), ["status", "pending", "tenant"])
        status, pending, owner = cast("list[bytes | None]", raw)
        if status is None or _others(owner, tenant):
            return None
        return _text(status), _text(pending) if status == b"QUEUED" else ""

    @_translated
    async def get_task(self, task_id: str, tenant: str | None = None) -> TaskRecord | None:
        values = await self.client.hmget(self.keys.task(task_id), list(_RECORD_FIELDS))
        return _record(task_id, cast("list[bytes | None]", values), tenant)

    @_translated
    async def get_tasks(
        self, task_ids: Sequence[str], tenant: str | None = None
    ) -> list[TaskRecord | None]:
        async with self.client.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hmget(self.keys.task(task_id), list(_RECORD_FIELDS))
            rows = await pipe.execute()
        return [_record(t, v, tenant) for t, v in zip(task_ids, rows, strict=True)]

    @_translated
    async def get_output(self, task_id: str, tenant: str | None = None) -> str | None:
        """What the task's function printed, as kept with it once it ended ("" for nothing
        yet); None for an unknown task or, with ``tenant``, another tenant's."""
        values = await self.client.hmget(self.keys.task(task_id), ["status", "tenant", "output"])
        status, owner, output = cast("list[bytes | None]", values)
        if status is None or _others(owner, tenant):
            return None
        return output.decode("utf-8", "replace") if output else ""

    # The dispatcher's report of itself (why tasks wait)

    @_translated
    async def presence_workers(self) -> set[str]:
        """The workers the heartbeats hash names (a dispatcher's first report removes those
        that are not connected to it)."""
        return set(_decoded(await self.client.hkeys(self.keys.heartbeats)))

    @_translated
    async def publish_presence(self, presence: Presence, gone: Collection[str] = ()) -> None:
        """Writes the dispatcher's report, both keys in one MULTI, and takes the workers
        ``gone`` (no longer connected) out of the heartbeats hash."""
        fields: dict[Any, Any] = {
            "updated": presence.updated_ms,
            "interval": presence.interval_ms,
            "workers": presence.workers,
            "slots": presence.slots,
            "free": presence.free,
        }
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.dispatcher, mapping=fields)
            if gone:
                pipe.hdel(self.keys.heartbeats, *gone)
            if presence.heartbeats:
                beats: dict[Any, Any] = dict(presence.heartbeats)
                pipe.hset(self.keys.heartbeats, mapping=beats)
            await pipe.execute()

    @_translated
    async def read_presence(self) -> Presence:
        """The dispatcher's last report (``updated_ms`` 0 when there is none)."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.dispatcher)
            pipe.hgetall(self.keys.heartbeats)
            raw, beats = await pipe.execute()
        fields = {k.decode(): int(v) for k, v in cast("dict[bytes, bytes]", raw).items()}
        return Presence(
            updated_ms=fields.get("updated", 0),
            interval_ms=fields.get("interval", 1000) or 1000,
            workers=fields.get("workers", 0),
            slots=fields.get("slots", 0),
            free=fields.get("free", 0),
            heartbeats={k.decode(): int(v) for k, v in cast("dict[bytes, bytes]", beats).items()},
        )

    # Tasks: the dispatcher's side

    @_translated
    async def queued_ids(self) -> list[str]:
        return _decoded(await self.client.zrange(self.keys.queued, 0, -1))

    @_translated
    async def running_ids(self) -> list[str]:
        return _decoded(await self.client.zrange(self.keys.running, 0, -1))

    @_translated
    async def load_queued(
        self, task_ids: Sequence[str], status: str = "QUEUED"
    ) -> list[QueuedTask]:
        """The tasks among ``task_ids`` still in ``status``, with what it takes to run them."""
        async with self.client.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hmget(self.keys.task(task_id), list(_QUEUED_FIELDS))
            rows = await pipe.execute()
        out = []
        wanted = status.encode()
        for task_id, row in zip(task_ids, rows, strict=True):
            state, function_id, payload, timeout, placement, runtime, pending = row
            if state == wanted and function_id is not None:
                out.append(
                    QueuedTask(
                        task_id,
                        function_id.decode(),
                        payload or b"",
                        _timeout_value(timeout),
                        placement=placement or b"",
                        runtime=runtime or b"",
                        pending_reason=_text(pending),
                    )
                )
        return out

    @_translated
    async def running_attempts(self, task_ids: Sequence[str]) -> dict[str, RunningAttempt]:
        """task_id -> its current attempt, for those of ``task_ids`` that are RUNNING."""
        async with self.client.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hmget(self.keys.task(task_id), ["status", "attempt_id", "worker_id"])
            rows = await pipe.execute()
        return {
            task_id: RunningAttempt(attempt.decode(), _text(worker))
            for task_id, (status, attempt, worker) in zip(task_ids, rows, strict=True)
            if status == b"RUNNING" and attempt
        }

    @_translated
    async def start_attempts(self, starts: Sequence[AttemptStart]) -> list[bool]:
        """Marks tasks RUNNING under a new attempt; False for a task that was not QUEUED."""
        if not starts:
            return []
        keys = [self.keys.queued, self.keys.running] + [self.keys.task(s.task_id) for s in starts]
        args: list[Any] = [_now_ms()]
        for s in starts:
            args += [s.task_id, s.attempt_id, s.worker_id]
        return [bool(x) for x in await self._start(keys=keys, args=args)]

    @_translated
    async def finish_attempts(self, outcomes: Sequence[AttemptOutcome]) -> list[TaskRecord | None]:
        """Stores outcomes; the state as stored (also for a repeat of a stored outcome), or None
        where the task was terminal or the attempt was not current.

        An outcome marked ``unstarted`` (its attempt was never recorded RUNNING: prefetched, and
        its start not written) is stored for a task still QUEUED as well.
        """
        if not outcomes:
            return []
        keys = [self.keys.queued, self.keys.running] + [self.keys.task(o.task_id) for o in outcomes]
        args: list[Any] = [_now_ms(), self._result_ttl_ms]
        for o in outcomes:
            args += [o.task_id, o.attempt_id, o.status, o.result, o.cause, o.message, o.traceback]
            args += ["1" if o.unstarted else "0", o.worker_id, o.output]
        rows = await self._finish(keys=keys, args=args)
        return [_written(o.task_id, row, o.result) for o, row in zip(outcomes, rows, strict=True)]

    @_translated
    async def requeue_attempts(
        self,
        lost: Sequence[LostAttempt],
        *,
        max_attempts: int,
        final_result: bytes,
        final_message: str,
        final_cause: str = "WORKER_LOST",
    ) -> list[Requeued]:
        """Puts lost attempts back to QUEUED, or FAILS a task with no attempts left (with the
        state as stored); a repeat for the same attempt reports what the first send did."""
        if not lost:
            return []
        keys = [self.keys.queued, self.keys.running] + [self.keys.task(x.task_id) for x in lost]
        args: list[Any] = [
            _now_ms(),
            max_attempts,
            self._result_ttl_ms,
            final_result,
            final_message,
            final_cause,
        ]
        for x in lost:
            args += [x.task_id, x.attempt_id]
        out = []
        for x, row in zip(lost, await self._requeue(keys=keys, args=args), strict=True):
            result = RequeueResult(int(row[0]))
            record = _written(x.task_id, row[1], final_result) if len(row) > 1 else None
            out.append(Requeued(result, record))
        return out

    @_translated
    async def fail_queued(self, failures: Sequence[QueuedFailure]) -> list[TaskRecord | None]:
        """FAILS tasks that are still QUEUED (never started): the state as stored, or None for
        one that was not QUEUED. A repeat with the same tokens (after a reply was lost) reports
        the state again.
        """
        if not failures:
            return []
        keys = [self.keys.queued] + [self.keys.task(f.task_id) for f in failures]
        args: list[Any] = [_now_ms(), self._result_ttl_ms]
        for f in failures:
            args += [f.task_id, f.token, f.result, f.cause, f.message]
        rows = await self._fail_queued(keys=keys, args=args)
        return [_written(f.task_id, row, f.result) for f, row in zip(failures, rows, strict=True)]

    @_translated
    async def set_pending(self, reasons: Sequence[tuple[str, str]]) -> int:
        """Stores why QUEUED tasks wait (task_id, reason; "" clears it); others are left alone."""
        if not reasons:
            return 0
        keys = [self.keys.task(task_id) for task_id, _ in reasons]
        return int(await self._set_pending(keys=keys, args=[reason for _, reason in reasons]))


def _function(
    function_id: str, values: Sequence[bytes | None], size: int, tenant: str | None
) -> FunctionRecord | None:
    """The record of a function's fields (``_FUNCTION_FIELDS``), None when there is none (of
    ``tenant``, when given)."""
    fields = dict(zip(_FUNCTION_FIELDS, cast("list[bytes | None]", values), strict=True))
    if fields["created"] is None or _others(fields["tenant"], tenant):
        return None
    return FunctionRecord(
        function_id=function_id,
        name=_text(fields["name"]),
        size_bytes=int(size),
        timeout=_timeout_value(fields["timeout"]),
        created_ms=_int(fields["created"]),
        by_reference=fields["by_reference"] == b"1",
        module=_text(fields["module"]),
        qualname=_text(fields["qualname"]),
        runtime=common_pb2.Runtime.FromString(fields["runtime"] or b""),
        placement=common_pb2.Placement.FromString(fields["placement"] or b""),
        tenant=_tenant(fields["tenant"]),
        submitted=_int(fields["submitted"]),
        completed=_int(fields["completed"]),
        failed=_int(fields["failed"]),
    )


def _written(task_id: str, row: Sequence[Any], result: bytes) -> TaskRecord | None:
    """The state a terminal write replied with (see scripts._STATE); None when not written."""
    if not row or int(row[0]) == 0:
        return None
    code, function_id, status, cause, message, traceback, attempts = row[:7]
    worker_id, created, started, finished, stored_result = row[7:12]
    return TaskRecord(
        task_id=task_id,
        function_id=_text(function_id),
        status=_text(status),
        result=stored_result if int(code) == 2 and stored_result is not None else result,
        cause=_text(cause),
        message=_text(message),
        traceback=_text(traceback),
        attempts=_int(attempts),
        worker_id=_text(worker_id),
        created_ms=_int(created),
        started_ms=_int(started),
        finished_ms=_int(finished),
        output_bytes=_int(row[12]) if len(row) > 12 else 0,
        requeued_ms=_int(row[13]) if len(row) > 13 else 0,
    )


def _decoded(raw: Any) -> list[str]:
    return [item.decode() for item in cast("list[bytes]", raw)]


def _record(
    task_id: str, values: Sequence[bytes | None], tenant: str | None = None
) -> TaskRecord | None:
    fields = dict(zip(_RECORD_FIELDS, values, strict=True))
    if fields["status"] is None or _others(fields["tenant"], tenant):
        return None
    return TaskRecord(
        task_id=task_id,
        function_id=_text(fields["function_id"]),
        status=_text(fields["status"]),
        result=fields["result"] or b"",
        cause=_text(fields["cause"]),
        message=_text(fields["message"]),
        traceback=_text(fields["traceback"]),
        attempts=_int(fields["attempts"]),
        worker_id=_text(fields["worker_id"]),
        created_ms=_int(fields["created"]),
        started_ms=_int(fields["started"]),
        finished_ms=_int(fields["finished"]),
        pending_reason=_text(fields["pending"]) if fields["status"] == b"QUEUED" else "",
        tenant=_tenant(fields["tenant"]),
        output_bytes=_int(fields["output_bytes"]),
        requeued_ms=_int(fields["requeued"]),
    )
