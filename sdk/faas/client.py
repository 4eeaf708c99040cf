"""``FaaSClient``: the Python SDK for the gateway, on the generated ``faas.v1`` stubs.

Example::

    from faas import FaaSClient

    def square(x: int) -> int:
        return x * x

    with FaaSClient("127.0.0.1:50051") as client:
        function_id = client.register(square)
        future = client.submit(function_id, 7)      # a concurrent.futures.Future
        assert future.result(timeout=60) == 49
        assert list(client.map(function_id, range(4))) == [0, 1, 4, 9]
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2

from faas.v1 import common_pb2, gateway_pb2

from . import _serde
from ._auth import resolve_api_key
from ._futures import TaskFuture, results_in_order
from ._loop import LoopThread
from ._models import (
    FunctionInfo,
    FunctionPage,
    TaskInfo,
    TaskOutput,
    TaskPage,
    TaskStatus,
    WaitInfo,
    WorkersReport,
)
from ._submitter import Submitter
from ._tls import PathArg, channel_credentials
from ._transport import RetryPolicy, Transport
from ._watcher import TaskWatcher
from .errors import ClientClosed, FaaSTimeout

__all__ = ["DEFAULT_TARGET", "Call", "FaaSClient"]

DEFAULT_TARGET = "127.0.0.1:50051"

# A GetResult long poll asks for at most this long (the gateway caps it at 60 s by default).
_LONG_POLL_SECONDS = 50.0
# ExecuteBatch requests stay below these, so one map never builds a huge message.
_BATCH_ITEMS = 1000
_BATCH_BYTES = 32 * 1024 * 1024

Call = tuple[Sequence[Any], Mapping[str, Any]]
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def _placement(
    labels: Mapping[str, str] | None,
    resources: Mapping[str, float] | None,
    any_python: bool = False,
    memory_limit_mb: int = 0,
    cpu_limit_seconds: float = 0.0,
) -> common_pb2.Placement | None:
    """What a function's or an execution's tasks need of a worker and may use there; None
    when nothing."""
    if not (labels or resources or any_python or memory_limit_mb or cpu_limit_seconds):
        return None
    for key, value in (labels or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"labels must map str to str, got {key!r}: {value!r}")
    for key, amount in (resources or {}).items():
        number = isinstance(amount, int | float) and not isinstance(amount, bool)
        if not isinstance(key, str) or not number:
            raise TypeError(f"resources must map str to a number, got {key!r}: {amount!r}")
    return common_pb2.Placement(
        labels=dict(labels or {}),
        resources={k: float(v) for k, v in (resources or {}).items()},
        any_python=any_python,
        memory_limit_mb=memory_limit_mb,
        cpu_limit_seconds=cpu_limit_seconds,
    )


def _duration(seconds: float | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    if not seconds > 0:
        raise ValueError(f"a time limit must be > 0 seconds, got {seconds}")
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


class FaaSClient:
    """A client of ``faas.v1.GatewayService`` with one channel and one I/O thread.

    ``timeout`` bounds every call (seconds); calls that find the gateway UNAVAILABLE are
    retried ``retries`` times, waiting ``backoff``, ``2*backoff``, ... (at most
    ``max_backoff``) in between; until the client has reached the gateway once, it retries only
    for ``RetryPolicy.connect_budget()`` (3.5 s with the defaults), so a platform that is not
    running is reported at once, naming the address. ``submit`` returns its future at once:
    the tasks submitted at about the same time are queued by one ExecuteBatch (see
    ``faas._submitter``). Every future (``submit``, ``submit_batch``, ``map``, ``future``) is
    completed from one WatchTasks stream served by the I/O thread, never by polling; it is
    re-opened every ``stream_timeout`` seconds. ``watch()`` follows one task on a WatchTask
    stream of its own, at most ``max_watches`` of them at once.
    ``api_key`` (default ``$FAAS_API_KEY``) goes on every call as ``authorization: Bearer``
    metadata, for a gateway with API keys (``faas keys issue``); a missing or unknown one fails
    calls with ``AuthenticationError``, a tenant over its quota with ``QuotaExceeded``.
    ``tls_ca`` (default ``$FAAS_TLS_CA``), the CA that verifies the gateway's certificate,
    turns TLS on; ``tls_cert`` and ``tls_key`` (``$FAAS_TLS_CLIENT_CERT``,
    ``$FAAS_TLS_CLIENT_KEY``) are a client certificate for a gateway that requires one.
    Errors are the ``faas.errors`` exceptions. Use it as a context manager, or ``close()`` it.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = 10.0,
        retries: int = 6,
        backoff: float = 0.25,
        max_backoff: float = 5.0,
        stream_timeout: float = 300.0,
        max_watches: int = 1000,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        api_key: str | None = None,
        tls_ca: PathArg | None = None,
        tls_cert: PathArg | None = None,
        tls_key: PathArg | None = None,
    ) -> None:
        api_key = resolve_api_key(api_key)
        credentials = channel_credentials(tls_ca, tls_cert, tls_key)
        if not timeout > 0 or not stream_timeout > 0 or max_watches < 1:
            raise ValueError("timeout and stream_timeout must be > 0, max_watches >= 1")
        policy = RetryPolicy(retries=retries, backoff=backoff, max_backoff=max_backoff)
        self._target = target
        self._closed = False
        self._lock = threading.Lock()
        self._loop = LoopThread(f"faas-client {target}")
        try:
            self._transport, self._watcher, self._submitter = self._loop.run(
                self._open(
                    target,
                    timeout,
                    policy,
                    stream_timeout,
                    max_watches,
                    interceptors,
                    api_key,
                    credentials,
                )
            )
        except BaseException:
            self._loop.stop()
            raise

    @staticmethod
    async def _open(
        target: str,
        timeout: float,
        policy: RetryPolicy,
        stream_timeout: float,
        max_watches: int,
        interceptors: Sequence[grpc.aio.ClientInterceptor],
        api_key: str | None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> tuple[Transport, TaskWatcher, Submitter]:
        transport = Transport(
            target,
            call_timeout=timeout,
            policy=policy,
            stream_timeout=stream_timeout,
            max_watches=max_watches,
            interceptors=interceptors,
            api_key=api_key,
            credentials=credentials,
        )
        watcher = TaskWatcher(transport)
        return transport, watcher, Submitter(transport, watcher.add)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **options: Any) -> FaaSClient:
        """A client for ``$FAAS_TARGET`` (default ``127.0.0.1:50051``) with the API key
        ``$FAAS_API_KEY`` (if set), both read from ``environ``."""
        options.setdefault("api_key", environ.get("FAAS_API_KEY", ""))
        return cls(environ.get("FAAS_TARGET") or DEFAULT_TARGET, **options)

    @property
    def target(self) -> str:
        """The gateway's ``host:port``."""
        return self._target

    def __enter__(self) -> FaaSClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaaSClient({self._target!r}{', closed' if self._closed else ''})"

    def close(self) -> None:
        """Closes the channel and stops the I/O thread; futures still waiting fail with
        ``ClientClosed``. Closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._loop.run(self._shutdown())
        finally:
            self._loop.stop()

    async def _shutdown(self) -> None:
        await self._submitter.close()
        await self._watcher.close()
        await self._transport.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("the client is closed")

    # --- functions and tasks -------------------------------------------------------------

    def register(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        *,
        timeout: float | None = None,
        labels: Mapping[str, str] | None = None,
        resources: Mapping[str, float] | None = None,
        any_python: bool = False,
        memory_limit_mb: int = 0,
        cpu_limit_seconds: float = 0.0,
    ) -> str:
        """Registers ``fn`` and returns its function id.

        ``fn`` is pickled with cloudpickle: by value when it comes from your own code (with
        the helpers, classes and constants of its module that it uses), so workers need not
        import its module; functions of installed packages and the standard library go as
        references. The request says which Python, dill and cloudpickle pickled it.
        ``name`` defaults to the function's qualified name; ``timeout`` is the default time
        limit in seconds of its tasks (none if unset). Its tasks run only on workers with
        these ``labels`` (exact values) and at least these ``resources``, and, unless
        ``any_python``, this Python's major.minor (and cloudpickle's). Each task may use at
        most ``memory_limit_mb`` of address space and ``cpu_limit_seconds`` of CPU time (0:
        the worker's maxima, which also cap these); over them it FAILS MEMORY_LIMIT or
        CPU_LIMIT::

            function_id = client.register(lambda x: x + 1, "inc")
            on_gpu = client.register(train, labels={"gpu": "h200"}, resources={"gpu": 1})
            small = client.register(parse, memory_limit_mb=512, cpu_limit_seconds=10)
        """
        if name is None:
            name = str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "function"))
        pickled = _serde.pickle_function(fn)
        request = gateway_pb2.RegisterFunctionRequest(
            name=name[:256],
            payload=pickled.payload,
            timeout=_duration(timeout),
            runtime=_serde.runtime(pickled.serializer),
            placement=_placement(labels, resources, any_python, memory_limit_mb, cpu_limit_seconds),
        )
        reply = self._call(self._transport.stub.RegisterFunction, request)
        return str(reply.function_id)

    def execute(
        self,
        function_id: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        resources: Mapping[str, float] | None = None,
        memory_limit_mb: int = 0,
        cpu_limit_seconds: float = 0.0,
    ) -> str:
        """Queues one task and returns its id, without waiting for it.

        ``timeout`` is this task's time limit in seconds. ``labels`` and ``resources`` are
        what this task needs of a worker, over the function's own; ``memory_limit_mb`` and
        ``cpu_limit_seconds``, when set, replace the function's limits. The call is retried only
        under an idempotency key, ``request_id`` (a fresh one by default), so a retry never
        creates a second task.
        """
        request = gateway_pb2.ExecuteFunctionRequest(
            function_id=function_id,
            payload=_serde.dumps_call(args, kwargs),
            timeout=_duration(timeout),
            request_id=request_id or str(uuid.uuid4()),
            placement=_placement(
                labels,
                resources,
                memory_limit_mb=memory_limit_mb,
                cpu_limit_seconds=cpu_limit_seconds,
            ),
        )
        reply = self._call(self._transport.stub.ExecuteFunction, request)
        return str(reply.task_id)

    def execute_batch(
        self,
        function_id: str,
        calls: Iterable[Call],
        *,
        timeout: float | None = None,
        labels: Mapping[str, str] | None = None,
        resources: Mapping[str, float] | None = None,
    ) -> list[str]:
        """Queues one task per ``(args, kwargs)`` pair with ExecuteBatch; their ids, in order.

        ``labels`` and ``resources`` are what every one of them needs of a worker, over the
        function's own. Large batches are sent as several requests. Each carries its own
        idempotency key, so a request retried after UNAVAILABLE never queues its tasks twice;
        if one still fails, the tasks of the requests before it stay queued.
        """
        task_ids: list[str] = []
        limit = _duration(timeout)
        placement = _placement(labels, resources)
        for chunk in _chunks(_serde.dumps_call(args, kwargs) for args, kwargs in calls):
            request = gateway_pb2.ExecuteBatchRequest(
                function_id=function_id,
                payloads=chunk,
                timeout=limit,
                request_id=str(uuid.uuid4()),
                placement=placement,
            )
            reply = self._call(self._transport.stub.ExecuteBatch, request)
            task_ids.extend(reply.task_ids)
        return task_ids

    def submit(
        self,
        function_id: str,
        /,
        *args: Any,
        labels: Mapping[str, str] | None = None,
        resources: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> TaskFuture:
        """Queues ``function(*args, **kwargs)``; a future of its value, returned at once.

        The task goes to the gateway with the others submitted at about the same time, in one
        ExecuteBatch (a lone submit goes at once); ``future.task_id`` is known when that
        answers. An error queueing it (an unknown function, a payload over the limit, the
        gateway unreachable after the retries) is raised by ``future.result()``.
        ``labels`` and ``resources`` are what the task needs of a worker, over the function's
        own; they never reach the function (a function's own ``labels`` argument goes
        through ``client.future(client.execute(function_id, args, kwargs))``). Example::

            future = client.submit(function_id, 2, 3)
            future.result()  # the return value, or the function's own exception re-raised
            client.submit(function_id, 4, labels={"zone": "b"})
        """
        return self._enqueue(function_id, args, kwargs, placement=_placement(labels, resources))

    def _enqueue(
        self,
        function_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        *,
        timeout: float | None = None,
        placement: common_pb2.Placement | None = None,
    ) -> TaskFuture:
        """A future for ``function(*args, **kwargs)``, its task queued by the submitter."""
        payload = _serde.dumps_call(args, kwargs)  # on the caller's thread: errors raise here
        future = TaskFuture()
        with self._lock:
            self._check_open()
            self._submitter.put(
                future, function_id, payload, timeout=_duration(timeout), placement=placement
            )
        future.add_done_callback(self._forget)
        return future

    def submit_batch(
        self,
        function_id: str,
        calls: Iterable[Call],
        *,
        timeout: float | None = None,
        labels: Mapping[str, str] | None = None,
        resources: Mapping[str, float] | None = None,
    ) -> list[TaskFuture]:
        """``execute_batch``, with a future per task."""
        task_ids = self.execute_batch(
            function_id, calls, timeout=timeout, labels=labels, resources=resources
        )
        return self._futures(task_ids)

    def map(
        self,
        function_id: str,
        *iterables: Iterable[Any],
        timeout: float | None = None,
        labels: Mapping[str, str] | None = None,
        resources: Mapping[str, float] | None = None,
    ) -> Iterator[Any]:
        """Like ``map(function, *iterables)``, run remotely: all tasks are queued at once (with
        ExecuteBatch) and the results come back in order. ``timeout`` bounds the whole
        iteration; a task that fails raises its exception when its turn comes. ``labels`` and
        ``resources`` are what every task needs of a worker, over the function's own::

            squares = list(client.map(function_id, range(10)))
            on_gpu = list(client.map(function_id, range(10), labels={"gpu": "h200"}))
        """
        calls: list[Call] = [(args, {}) for args in zip(*iterables, strict=False)]
        futures = (
            self.submit_batch(function_id, calls, labels=labels, resources=resources)
            if calls
            else []
        )
        return results_in_order(futures, timeout)

    def future(self, task_id: str) -> TaskFuture:
        """A future for an existing task, completed from the client's WatchTasks stream."""
        return self._futures([task_id])[0]

    def _futures(self, task_ids: Sequence[str]) -> list[TaskFuture]:
        futures = [TaskFuture(task_id) for task_id in task_ids]
        with self._lock:
            self._check_open()
            self._loop.call_soon(self._watcher.add, futures)
        for future in futures:
            future.add_done_callback(self._forget)
        return futures

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        """A cancelled future is no longer watched."""
        if future.cancelled() and not self._closed:
            assert isinstance(future, TaskFuture)
            with self._lock:
                if not self._closed:
                    self._loop.call_soon(self._watcher.discard, future)

    # --- reading tasks -------------------------------------------------------------------

    def status(self, task_id: str) -> TaskStatus:
        """The task's status: ``TaskStatus.QUEUED``, ``RUNNING``, ``COMPLETED`` or ``FAILED``."""
        reply = self._call(
            self._transport.stub.GetStatus, gateway_pb2.GetStatusRequest(task_id=task_id)
        )
        return TaskStatus.from_proto(reply.status)

    def waiting(self, task_id: str) -> WaitInfo | None:
        """Why the task is where it is and since when; None once it has ended."""
        reply = self._call(
            self._transport.stub.GetStatus, gateway_pb2.GetStatusRequest(task_id=task_id)
        )
        return WaitInfo.from_proto(reply)

    def output(self, task_id: str) -> TaskOutput:
        """What the task's function printed (stdout and stderr), kept once it ended."""
        reply = self._call(
            self._transport.stub.GetTaskOutput, gateway_pb2.GetTaskOutputRequest(task_id=task_id)
        )
        return TaskOutput(task_id=reply.task_id, output=reply.output, truncated=reply.truncated)

    def task(self, task_id: str, *, wait: float | None = None) -> TaskInfo:
        """A snapshot of the task; with ``wait``, a long poll that returns as soon as the task
        ends or after ``wait`` seconds (the gateway caps one poll at its own maximum)."""
        self._check_open()
        return self._loop.run(self._get_result(task_id, wait))

    async def _get_result(self, task_id: str, wait: float | None) -> TaskInfo:
        request = gateway_pb2.GetResultRequest(task_id=task_id)
        timeout = None
        limit = _duration(wait) if wait is not None and wait > 0 else None
        if limit is not None:
            request.wait.CopyFrom(limit)
            timeout = limit.ToTimedelta().total_seconds() + self._transport.call_timeout
        reply = await self._transport.unary(
            self._transport.stub.GetResult, request, timeout=timeout
        )
        return TaskInfo.from_proto(reply.task)

    def result(self, task_id: str, timeout: float | None = None) -> Any:
        """The task's return value, waiting up to ``timeout`` seconds (``None``: no limit).

        Re-raises the function's own exception if it raised; raises ``TaskFailed`` if the task
        failed otherwise, and ``FaaSTimeout`` if it has not ended in time. Waits by long polls.
        """
        self._check_open()
        info = self._loop.run(self._wait_ended(task_id, timeout))
        return _serde.outcome(info)

    async def _wait_ended(self, task_id: str, timeout: float | None) -> TaskInfo:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _LONG_POLL_SECONDS if deadline is None else deadline - time.monotonic()
            info = await self._get_result(task_id, min(left, _LONG_POLL_SECONDS))
            if info.status.terminal:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise FaaSTimeout(
                    f"task {task_id} did not end within {timeout}s (it is {info.status})",
                    reason="WAIT_TIMEOUT",
                )

    def watch(self, task_id: str) -> Iterator[TaskInfo]:
        """Yields a snapshot of the task on every status change, the last one terminal, and
        whenever the reason it waits changes (``info.waiting``: a worker joined, none has its
        labels, the worker running it went silent).

        Example::

            for info in client.watch(task_id):
                print(info.status, info.waiting.reason if info.waiting else "")
        """
        self._check_open()
        if self._loop.in_loop:
            raise RuntimeError("watch() cannot run on the client's own I/O thread")
        return self._watch(task_id)

    def _watch(self, task_id: str) -> Iterator[TaskInfo]:
        items: queue.SimpleQueue[TaskInfo | BaseException | None] = queue.SimpleQueue()
        watch = self._loop.spawn(
            self._transport.watch(task_id, lambda state: items.put(TaskInfo.from_proto(state)))
        )

        def finished(done: concurrent.futures.Future[common_pb2.TaskState]) -> None:
            error = None if done.cancelled() else done.exception()
            items.put(error)

        watch.add_done_callback(finished)
        try:
            while (item := items.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            watch.cancel()

    def workers(self) -> WorkersReport:
        """The workers connected to the dispatcher, their load, and the queue length."""
        reply = self._call(self._transport.stub.ListWorkers, gateway_pb2.ListWorkersRequest())
        return WorkersReport.from_proto(reply)

    def get_function(self, function_id: str) -> FunctionInfo:
        """What the gateway recorded about a registered function: its size, runtime, placement,
        and whether it is pickled by reference (then ``module`` must import on the workers)."""
        request = gateway_pb2.GetFunctionRequest(function_id=function_id)
        return FunctionInfo.from_proto(
            self._call(self._transport.stub.GetFunction, request).function
        )

    # --- listings ------------------------------------------------------------------------

    def list_tasks(
        self,
        *,
        statuses: Iterable[TaskStatus | str] = (),
        function_id: str = "",
        worker_id: str = "",
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> TaskPage:
        """One page of this caller's tasks, newest first, filtered (``statuses``: any of them;
        times: created at or after ``created_after`` and before ``created_before``), without
        their results. Pass ``next_page_token`` back with the same filters for the next page;
        a page may be short (the gateway bounds what one call reads) and still have a next one.
        """
        request = gateway_pb2.ListTasksRequest(
            page_size=page_size,
            page_token=page_token,
            function_id=function_id,
            worker_id=worker_id,
            statuses=[_status_value(status) for status in statuses],
        )
        if created_after is not None:
            request.created_after.FromDatetime(created_after)
        if created_before is not None:
            request.created_before.FromDatetime(created_before)
        reply = self._call(self._transport.stub.ListTasks, request)
        return TaskPage(
            tasks=tuple(TaskInfo.from_proto(state) for state in reply.tasks),
            next_page_token=reply.next_page_token,
        )

    def iter_tasks(self, **filters: Any) -> Iterator[TaskInfo]:
        """Every task :meth:`list_tasks` lists with these filters, page after page."""
        token = ""
        while True:
            page = self.list_tasks(**filters, page_token=token)
            yield from page.tasks
            token = page.next_page_token
            if not token:
                return

    def list_functions(self, *, page_size: int = 0, page_token: str = "") -> FunctionPage:
        """One page of this caller's functions, newest first, with their counts."""
        request = gateway_pb2.ListFunctionsRequest(page_size=page_size, page_token=page_token)
        reply = self._call(self._transport.stub.ListFunctions, request)
        return FunctionPage(
            functions=tuple(FunctionInfo.from_proto(info) for info in reply.functions),
            next_page_token=reply.next_page_token,
        )

    def iter_functions(self, *, page_size: int = 0) -> Iterator[FunctionInfo]:
        """Every function of this caller, newest first, page after page."""
        token = ""
        while True:
            page = self.list_functions(page_size=page_size, page_token=token)
            yield from page.functions
            token = page.next_page_token
            if not token:
                return

    def delete_function(self, function_id: str) -> None:
        """Deletes a function (later executes of it raise ``FunctionNotFound``; its tasks'
        records stay). Raises ``FunctionNotFound`` for an unknown one, and ``FaaSError`` with
        reason ``FUNCTION_HAS_OPEN_TASKS`` while it has QUEUED or RUNNING tasks."""
        request = gateway_pb2.DeleteFunctionRequest(function_id=function_id)
        self._call(self._transport.stub.DeleteFunction, request, idempotent=False)

    def _call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        idempotent: bool = True,
    ) -> Resp:
        self._check_open()
        return self._loop.run(self._transport.unary(method, request, idempotent=idempotent))


def _status_value(status: TaskStatus | str) -> common_pb2.TaskStatus.ValueType:
    name = str(status).upper()
    try:
        return common_pb2.TaskStatus.Value(f"TASK_STATUS_{name}")
    except ValueError:
        raise ValueError(
            f"{status!r} is not a task status (QUEUED, RUNNING, COMPLETED, FAILED)"
        ) from None


def _chunks(payloads: Iterable[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    size = 0
    for payload in payloads:
        if chunk and (len(chunk) >= _BATCH_ITEMS or size + len(payload) > _BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(payload)
        size += len(payload)
    if chunk:
        yield chunk
