"""Batcher: concurrent submits share one handler call; errors reach every caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.common.batcher import Batcher


def test_concurrent_submits_are_one_batch() -> None:
    calls: list[list[int]] = []

    async def handler(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        return [i * 10 for i in items]

    async def main() -> list[int]:
        batcher: Batcher[int, int] = Batcher(handler)
        return list(await asyncio.gather(*(batcher.submit(i) for i in range(5))))

    assert asyncio.run(main()) == [0, 10, 20, 30, 40]
    assert calls == [[0, 1, 2, 3, 4]]


def test_max_batch_splits() -> None:
    calls: list[int] = []

    async def handler(items: Sequence[int]) -> list[int]:
        calls.append(len(items))
        return list(items)

    async def main() -> None:
        batcher: Batcher[int, int] = Batcher(handler, max_batch=2)
        await asyncio.gather(*(batcher.submit(i) for i in range(5)))

    asyncio.run(main())
    assert calls == [2, 2, 1]


def test_a_failing_batch_fails_each_caller() -> None:
    async def handler(items: Sequence[int]) -> list[int]:
        raise ConnectionError("down")

    async def main() -> None:
        batcher: Batcher[int, int] = Batcher(handler)
        results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results)
        await batcher.submit(3)

    with pytest.raises(ConnectionError):
        asyncio.run(main())


def test_max_bytes_splits_and_a_big_item_goes_alone() -> None:
    calls: list[list[int]] = []

    async def handler(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        return list(items)

    async def main() -> list[int]:
        batcher: Batcher[int, int] = Batcher(handler, size=lambda n: n, max_bytes=10)
        return list(await asyncio.gather(*(batcher.submit(n) for n in (4, 4, 4, 30, 1))))

    assert asyncio.run(main()) == [4, 4, 4, 30, 1]
    assert calls == [[4, 4], [4], [30], [1]]


def test_submit_many_shares_batches_and_splits_across_them() -> None:
    calls: list[list[int]] = []

    async def handler(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        await asyncio.sleep(0)
        return [i * 10 for i in items]

    async def main() -> tuple[list[int], list[int], int]:
        batcher: Batcher[int, int] = Batcher(handler, max_batch=3)
        first, second, third = await asyncio.gather(
            batcher.submit_many([1, 2]), batcher.submit_many([3, 4, 5]), batcher.submit(6)
        )
        return first, second, third

    assert asyncio.run(main()) == ([10, 20], [30, 40, 50], 60)
    assert calls == [[1, 2, 3], [4, 5, 6]]


def test_batch_queue_hands_items_over_in_batches_one_at_a_time() -> None:
    from services.common.batcher import BatchQueue

    calls: list[list[int]] = []

    async def main() -> None:
        release = asyncio.Event()

        async def handler(items: list[int]) -> None:
            calls.append(items)
            await release.wait()

        queue: BatchQueue[int] = BatchQueue(handler)
        queue.add([1, 2])
        await asyncio.sleep(0.01)  # the first batch is under way
        queue.add([3])
        queue.add([4, 5])
        await asyncio.sleep(0.01)
        assert calls == [[1, 2]]  # the rest wait for it
        release.set()
        for _ in range(100):  # bounded: a few loop turns
            if len(calls) == 2:
                break
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert calls == [[1, 2], [3, 4, 5]]
