"""One background thread running an asyncio event loop, shared by all of a client's calls."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread; coroutines are handed to it from any other thread.

    Futures the loop resolves run their done-callbacks on this thread, so a blocking call made
    from such a callback would wait on itself; ``run`` refuses it with a RuntimeError.
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._started.set)
        try:
            self._loop.run_forever()
        finally:
            self._cancel_leftovers()
            self._loop.close()

    def _cancel_leftovers(self) -> None:
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        if tasks:
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())

    @property
    def in_loop(self) -> bool:
        """Whether the caller is running on the loop's thread."""
        return threading.current_thread() is self._thread

    def spawn(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedules ``coro`` on the loop; cancelling the returned future cancels it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Calls ``callback(*args)`` on the loop, soon (from any thread)."""
        self._loop.call_soon_threadsafe(callback, *args)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs ``coro`` on the loop and blocks until it ends (Ctrl-C cancels it)."""
        if self.in_loop:
            coro.close()
            raise RuntimeError(
                "a blocking FaaSClient call was made on the client's own I/O thread "
                "(from a future's done-callback?); call it from another thread"
            )
        future = self.spawn(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        """Stops the loop (cancelling what still runs on it) and joins the thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            if not self.in_loop:
                self._thread.join()
