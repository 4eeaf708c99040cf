"""The worker's function-body cache and the dispatcher's mirror agree batch after batch."""

from __future__ import annotations

import random

from faas.v1 import dispatcher_pb2

from services.common.function_cache import FunctionCache


def _batch(bodies: dict[str, bytes], uses: list[str]) -> dispatcher_pb2.AssignmentBatch:
    return dispatcher_pb2.AssignmentBatch(
        functions=[
            dispatcher_pb2.FunctionBody(function_id=f, payload=p) for f, p in bodies.items()
        ],
        assignments=[
            dispatcher_pb2.Assignment(task_id=f"t{i}", attempt_id=f"a{i}", function_id=f)
            for i, f in enumerate(uses)
        ],
    )


def test_least_recently_used_bodies_go_past_the_budget_but_never_one_the_batch_uses() -> None:
    cache = FunctionCache(100)
    assert cache.apply(_batch({"a": b"x" * 40, "b": b"y" * 40}, ["a", "b"])) == []
    assert cache.apply(_batch({}, ["a"])) == []  # a is now the most recently used
    assert cache.apply(_batch({"c": b"z" * 40}, ["c"])) == ["b"]
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert cache.size == 80 and cache.get("a") == b"x" * 40 and cache.get("b") == b""
    # One body over the whole budget stays while its batch uses it, and goes at the next.
    assert cache.apply(_batch({"big": b"!" * 500}, ["big", "a"])) == ["c"]
    assert "big" in cache and "a" in cache
    assert cache.apply(_batch({}, ["a"])) == ["big"]
    assert cache.size == 40


def test_no_budget_keeps_everything_and_a_new_connection_starts_empty() -> None:
    cache = FunctionCache(0)
    for i in range(50):
        assert cache.apply(_batch({f"f{i}": b"x" * 1000}, [f"f{i}"])) == []
    assert len(cache) == 50
    cache.clear()
    assert len(cache) == 0 and cache.size == 0 and cache.missing(["f1", "f1", "f2"]) == ["f1", "f2"]


def test_the_mirror_always_knows_what_the_worker_holds() -> None:
    """A dispatcher that sends only the bodies its mirror says are missing: the worker always
    holds the body of every assignment it receives, under random traffic and sizes."""
    rng = random.Random(7)
    sizes = {f"f{i}": rng.randint(1, 400) for i in range(30)}
    worker = FunctionCache(1000)
    mirror = FunctionCache(1000, keep_bodies=False)
    for _ in range(2000):
        uses = [rng.choice(list(sizes)) for _ in range(rng.randint(1, 6))]
        batch = _batch({f: b"b" * sizes[f] for f in mirror.missing(uses)}, uses)
        assert mirror.apply(batch) == worker.apply(batch)
        for f in uses:
            assert worker.get(f) == b"b" * sizes[f]
        assert worker.size == mirror.size <= 1000 + sum(sizes[f] for f in set(uses))
