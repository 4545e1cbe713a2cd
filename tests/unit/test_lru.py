"""The one bounded cache: LRU order, capacity, O(1) eviction under churn."""

from __future__ import annotations

import pytest

from gateway.lru import BoundedCache


def test_least_recently_used_entry_goes_first() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert list(cache) == ["a", "c"] and "b" not in cache


def test_peek_does_not_refresh_and_put_replaces() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.peek("a") == 1
    cache.put("b", 20)
    cache.put("c", 3)
    assert list(cache) == ["b", "c"] and cache.get("b") == 20


def test_get_default_pop_clear() -> None:
    cache: BoundedCache[str, int] = BoundedCache(3)
    assert cache.get("x") is None and cache.get("x", 7) == 7
    cache.put("x", 1)
    assert cache.pop("x") == 1 and cache.pop("x") is None
    cache.put("y", 2)
    cache.clear()
    assert len(cache) == 0


def test_capacity_zero_keeps_nothing_and_negative_is_refused() -> None:
    cache: BoundedCache[str, int] = BoundedCache(0)
    cache.put("a", 1)
    assert len(cache) == 0 and cache.get("a") is None
    with pytest.raises(ValueError):
        BoundedCache(-1)


def test_churn_keeps_exactly_the_newest_entries() -> None:
    cache: BoundedCache[int, int] = BoundedCache(1_000)
    for i in range(20_000):
        cache.put(i, i)
    assert len(cache) == 1_000 and list(cache) == list(range(19_000, 20_000))
