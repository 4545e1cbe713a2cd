"""The one bounded cache every in-memory memo of the gateway uses.

A least-recently-used map with a fixed capacity on :class:`collections.OrderedDict`:
lookups, inserts and the eviction of the oldest entry are all O(1) (a plain dict's
``del d[next(iter(d))]`` is not: deleted slots pile up at its front and every later
``next(iter(d))`` scans past them). One event-loop thread uses each instance; there is
no locking.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

__all__ = ["BoundedCache"]


class BoundedCache(Generic[K, V]):
    """At most ``capacity`` entries; past it the least recently used one is dropped.

    ``capacity`` 0 keeps nothing (every :meth:`put` is a no-op), which turns a cache off.
    """

    __slots__ = ("_capacity", "_entries")

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self._capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()

    @property
    def capacity(self) -> int:
        """The most entries kept."""
        return self._capacity

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """The entry for ``key`` (now the most recently used), or ``default``."""
        entries = self._entries
        try:
            value = entries[key]
        except KeyError:
            return default
        entries.move_to_end(key)
        return value

    def peek(self, key: K) -> V | None:
        """The entry for ``key`` without touching its recency."""
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        """Store ``value`` under ``key`` as the most recently used; evict past capacity."""
        if self._capacity == 0:
            return
        entries = self._entries
        entries[key] = value
        entries.move_to_end(key)
        if len(entries) > self._capacity:
            entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        """Remove and return the entry for ``key``, if any."""
        return self._entries.pop(key, None)

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
