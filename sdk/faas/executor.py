"""``FaaSExecutor``: the platform as a ``concurrent.futures.Executor``, as Globus Compute offers.

Example::

    from faas import FaaSExecutor

    def double(x: int) -> int:
        return 2 * x

    with FaaSExecutor("127.0.0.1:50051") as executor:
        future = executor.submit(double, 21)          # registers double once, then runs it
        assert future.result() == 42
        assert list(executor.map(double, [1, 2, 3])) == [2, 4, 6]
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._futures import TaskFuture, results_in_order
from .client import DEFAULT_TARGET, Call, FaaSClient

__all__ = ["FaaSExecutor"]


class FaaSExecutor(concurrent.futures.Executor):
    """Runs callables on the platform and returns ``TaskFuture`` objects.

    Each callable is registered once (cached by identity), pickled as ``FaaSClient.register``
    pickles it (your own code by value, installed packages by reference). ``submit`` returns
    at once (its tasks are queued in batches, as ``FaaSClient.submit``'s are) and every
    future completes from the client's one WatchTasks stream, not by polling. ``map`` queues
    every call in one ExecuteBatch and keeps the order. Pass a ``FaaSClient`` to share one
    (it is then not closed on shutdown), or a ``target`` and the client's keyword options
    (``retries``, ``backoff``, ``timeout``...).
    ``task_timeout`` is the time limit in seconds of each task (none if unset).
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        client: FaaSClient | None = None,
        task_timeout: float | None = None,
        **client_options: Any,
    ) -> None:
        self._owns_client = client is None
        self.client = client if client is not None else FaaSClient(target, **client_options)
        self.task_timeout = task_timeout
        self._function_ids: dict[Callable[..., Any], str] = {}
        self._lock = threading.Lock()
        self._register_lock = threading.Lock()
        self._futures: set[TaskFuture] = set()
        self._shutdown = False

    def function_id(self, fn: Callable[..., Any]) -> str:
        """The id ``fn`` is registered under, registering it on first use."""
        try:
            hash(fn)
        except TypeError:  # an unhashable callable cannot be cached: register it each time
            return self.client.register(fn, timeout=self.task_timeout)
        with self._register_lock:
            function_id = self._function_ids.get(fn)
            if function_id is None:
                function_id = self.client.register(fn, timeout=self.task_timeout)
                self._function_ids[fn] = function_id
            return function_id

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskFuture:
        """Runs ``fn(*args, **kwargs)`` on the platform; the future of its value."""
        self._check_open()
        function_id = self.function_id(fn)
        return self._track([self.client._enqueue(function_id, args, kwargs)])[0]

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """Like ``map(fn, *iterables)``: all calls are queued at once (in one ExecuteBatch per
        thousand) and results are yielded in order; ``timeout`` bounds the whole iteration.
        ``chunksize`` is accepted for compatibility and ignored."""
        self._check_open()
        calls: list[Call] = [(args, {}) for args in zip(*iterables, strict=False)]
        if not calls:
            return iter(())
        function_id = self.function_id(fn)
        futures = self.client.submit_batch(function_id, calls, timeout=self.task_timeout)
        return results_in_order(self._track(futures), timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stops accepting work; with ``wait``, blocks until every future is done.

        ``cancel_futures`` cancels the futures of tasks still queued (locally: those tasks
        still run). The client is closed if the executor created it.
        """
        with self._lock:
            self._shutdown = True
            futures = list(self._futures)
        if cancel_futures:
            for future in futures:
                future.cancel()
        if wait:
            concurrent.futures.wait(futures)
        if self._owns_client:
            self.client.close()

    def _check_open(self) -> None:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def _track(self, futures: list[TaskFuture]) -> list[TaskFuture]:
        with self._lock:
            self._futures.update(futures)
        for future in futures:
            future.add_done_callback(self._done)
        return futures

    def _done(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)
