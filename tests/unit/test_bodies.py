"""The dispatcher's function-body cache: an LRU bounded in bytes (pure logic)."""

from __future__ import annotations

from services.dispatcher.bodies import BodyCache


def test_least_recently_used_bodies_go_past_the_budget() -> None:
    cache = BodyCache(max_bytes=10)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # a is now the most recently used
    cache.put("c", b"1234")  # 12 bytes: b goes
    assert "b" not in cache and cache.get("a") == b"1234" and cache.get("c") == b"1234"
    assert (len(cache), cache.size) == (2, 8)


def test_an_oversized_or_missing_body_is_not_kept() -> None:
    cache = BodyCache(max_bytes=10)
    cache.put("big", b"x" * 11)
    cache.put("missing", b"")
    assert len(cache) == 0 and cache.size == 0
    cache.put("a", b"12")
    cache.put("a", b"1234")  # replaced, counted once
    assert cache.size == 4 and cache.get("a") == b"1234"
