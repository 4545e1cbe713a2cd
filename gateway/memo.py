"""Reusing responses built from immutable domain objects (the hot paths' last step)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from gateway.lru import BoundedCache

_Response = TypeVar("_Response")


class ResponseMemo(Generic[_Response]):
    """Responses built from immutable domain objects, reused while the service hands back
    the very same object (the signer's same-second token, the registry cache's channel).

    A new object, e.g. the channel once it is synced, gets a new response: the memo
    compares identity, and holds the object so its identity cannot be reused. Callers
    must treat what they get as read-only (gRPC only serializes a returned message).
    """

    def __init__(self, max_entries: int = 4096) -> None:
        # key -> (the domain object the message was built from, the message)
        self._entries: BoundedCache[Hashable, tuple[object, _Response]] = BoundedCache(max_entries)

    def get(self, key: Hashable, source: object, build: Callable[[], _Response]) -> _Response:
        """The message for ``source`` under ``key``, built by ``build`` if not known."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] is source:
            return entry[1]
        message = build()
        self._entries.put(key, (source, message))
        return message
