"""Static checks of users' pickled payloads. Nothing here unpickles: only workers run user code.

Walking a pickle stream costs time in proportion to its opcodes: 16 MiB of one-byte opcodes take
seconds of CPU. ``PayloadChecker`` keeps that off the event loop: small payloads are walked
inline (a few milliseconds at most), large ones in a separate process, with a bounded number of
bytes waiting. A busy checker is UNAVAILABLE with its own reason, never a store outage.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from services.common.errors import InvalidArgument, PayloadTooLarge, Unavailable

from .pickle_scan import Scan, scan, scan_all

log = logging.getLogger(__name__)

# Payloads (or batches) up to this many bytes are walked on the event loop: at worst (one-byte
# opcodes) about 0.2 µs a byte, so a few milliseconds.
INLINE_BYTES = 32 * 1024
# Bytes of large payloads that may be under check or waiting for it: eight at the default limit.
MAX_PENDING_BYTES = 128 * 1024 * 1024


def check_size(payload: bytes, limit: int, what: str = "payload") -> None:
    if len(payload) > limit:
        raise PayloadTooLarge(
            f"{what} is {len(payload)} bytes, over the limit of {limit} bytes",
            "PAYLOAD_TOO_LARGE",
            size=str(len(payload)),
            limit=str(limit),
        )


def _raise_for(result: Scan, what: str, *, function: bool) -> None:
    if result.reason:
        raise InvalidArgument(f"{what} {result.message}", result.reason)
    if function and not result.refers_to_code:
        raise InvalidArgument(
            f"{what} is a pickled value, not a serialized function", "PAYLOAD_NOT_FUNCTION"
        )


def check_function_payload(payload: bytes, limit: int) -> Scan:
    """A well-formed pickle that refers to code (a plain value such as ``5`` refers to none).

    Returns what the walk found: whether the function is a bare reference, and its protocol.
    """
    check_size(payload, limit)
    result = scan(payload)
    _raise_for(result, "payload", function=True)
    return result


def check_args_payload(payload: bytes, limit: int) -> None:
    """A well-formed pickle stream; its ((args), {kwargs}) shape is checked by the worker."""
    check_size(payload, limit)
    _raise_for(scan(payload), "payload", function=False)


def _exit_with(parent: int) -> None:
    """In a checker process: exit when the gateway that started it is gone (never an orphan)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class PayloadChecker:
    """The gateway's payload checks, off the event loop for anything but small payloads.

    ``processes`` checker processes are started on first need. Large checks of at most
    ``max_pending_bytes`` in all run or wait at a time (one is always let through); a check
    that would pass that is refused as UNAVAILABLE (PAYLOAD_CHECKS_BUSY), and nothing is stored.
    """

    def __init__(
        self,
        limit: int,
        *,
        processes: int = 1,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        inline_bytes: int = INLINE_BYTES,
    ) -> None:
        self._limit = limit
        self._processes = processes
        self._max_pending_bytes = max_pending_bytes
        self._inline_bytes = inline_bytes
        self._pending_bytes = 0
        self._pool: ProcessPoolExecutor | None = None

    async def check_function(self, payload: bytes) -> Scan:
        """As ``check_function_payload``."""
        check_size(payload, self._limit)
        (result,) = await self._scan([payload])
        _raise_for(result, "payload", function=True)
        return result

    async def check_args(self, payloads: Sequence[bytes]) -> None:
        """As ``check_args_payload`` for each; a batch's items are named ``payloads[i]``."""
        many = len(payloads) > 1
        for index, item in enumerate(payloads):
            check_size(item, self._limit, f"payloads[{index}]" if many else "payload")
        for index, result in enumerate(await self._scan(list(payloads))):
            _raise_for(result, f"payloads[{index}]" if many else "payload", function=False)

    async def _scan(self, payloads: list[bytes]) -> list[Scan]:
        size = sum(len(p) for p in payloads)
        if size <= self._inline_bytes:
            return scan_all(payloads)
        if self._pending_bytes and self._pending_bytes + size > self._max_pending_bytes:
            raise Unavailable(
                f"the gateway is checking {self._pending_bytes} bytes of other large payloads; "
                "retry later",
                "PAYLOAD_CHECKS_BUSY",
            )
        self._pending_bytes += size
        try:
            pool = self._pool_now()
            return await asyncio.get_running_loop().run_in_executor(pool, scan_all, payloads)
        except BrokenProcessPool:
            log.warning("a payload checker process died; starting a new one")
            self._discard_pool()
            raise Unavailable(
                "the payload check was interrupted; retry", "PAYLOAD_CHECK_INTERRUPTED"
            ) from None
        finally:
            self._pending_bytes -= size

    def _pool_now(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),  # no fork of a gRPC process
                initializer=_exit_with,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _discard_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stops the checker processes (checks under way end as interrupted)."""
        self._discard_pool()
