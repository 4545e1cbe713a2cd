"""A short-lived read-through cache of orders in front of any :class:`OrderRegistry`.

Orders change (closed, disputed, synced), possibly on another replica, so nothing is kept
for long: an entry is served for at most ``ttl_s`` (``CHAT_GATEWAY_REGISTRY_CACHE_TTL``,
under a second) after it was read or written, and a change made through this replica
replaces its entry at once. So a change on any replica shows on every replica within
``ttl_s`` of returning, while a burst of calls for one order (a chat page's
``AuthorizeParticipant`` and repeated ``EnsureOrderChannel`` retries) costs one read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from gateway.domain import OrderChannel, OrderEvent, Revocation
from gateway.lru import BoundedCache
from gateway.registry import (
    ClaimedOrder,
    ClaimedRevocation,
    OrderRegistry,
    PendingStats,
    Transition,
)


class OrderCache:
    """:class:`gateway.registry.OrderRegistry` decorator with a bounded, short-lived LRU
    of orders."""

    def __init__(
        self,
        inner: OrderRegistry,
        *,
        max_entries: int = 50_000,
        ttl_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl_s = ttl_s
        self._clock = clock
        # order id -> (the channel, when it stops being served)
        self._entries: BoundedCache[str, tuple[OrderChannel, float]] = BoundedCache(max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def _fresh(self, order_id: str) -> OrderChannel | None:
        entry = self._entries.get(order_id)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            self._entries.pop(order_id)
            return None
        return entry[0]

    def _remember(self, channel: OrderChannel) -> OrderChannel:
        self._entries.put(channel.order_id, (channel, self._clock() + self._ttl_s))
        return channel

    # -- cached ----------------------------------------------------------------------------

    async def ensure(
        self, channel: OrderChannel, event: OrderEvent, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        known = self._fresh(channel.order_id)
        if known is not None:
            return known, False
        stored, created = await self._inner.ensure(channel, event, claim_for=claim_for)
        return self._remember(stored), created

    async def get(self, order_id: str) -> OrderChannel | None:
        known = self._fresh(order_id)
        if known is not None:
            return known
        channel = await self._inner.get(order_id)
        return None if channel is None else self._remember(channel)

    async def change(
        self, order_id: str, transition: Transition, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        self._entries.pop(order_id)
        channel, changed = await self._inner.change(order_id, transition, claim_for=claim_for)
        return self._remember(channel), changed

    async def mark_synced(self, order_id: str, version: int) -> OrderChannel:
        return self._remember(await self._inner.mark_synced(order_id, version))

    async def resync(self, order_ids: Sequence[str]) -> int:
        for order_id in order_ids:
            self._entries.pop(order_id)
        return await self._inner.resync(order_ids)

    # -- passed through --------------------------------------------------------------------

    async def history(self, order_id: str) -> list[OrderEvent]:
        return await self._inner.history(order_id)

    async def record_failure(self, order_id: str, *, retry_at: datetime, error: str) -> None:
        await self._inner.record_failure(order_id, retry_at=retry_at, error=error)

    async def claim_pending(self, *, limit: int, lease: timedelta) -> list[ClaimedOrder]:
        return await self._inner.claim_pending(limit=limit, lease=lease)

    async def claim(self, order_id: str, *, lease: timedelta) -> ClaimedOrder | None:
        return await self._inner.claim(order_id, lease=lease)

    async def orders(self, *, after: str, limit: int) -> list[OrderChannel]:
        return await self._inner.orders(after=after, limit=limit)

    async def revoke(
        self, user_id: str, revoke_time: datetime, *, claim_for: timedelta
    ) -> Revocation:
        return await self._inner.revoke(user_id, revoke_time, claim_for=claim_for)

    async def mark_revocation_synced(self, user_id: str, revoke_time: datetime) -> Revocation:
        return await self._inner.mark_revocation_synced(user_id, revoke_time)

    async def record_revocation_failure(
        self, user_id: str, *, retry_at: datetime, error: str
    ) -> None:
        await self._inner.record_revocation_failure(user_id, retry_at=retry_at, error=error)

    async def claim_pending_revocations(
        self, *, limit: int, lease: timedelta
    ) -> list[ClaimedRevocation]:
        return await self._inner.claim_pending_revocations(limit=limit, lease=lease)

    async def pending_revocations(self) -> list[Revocation]:
        return await self._inner.pending_revocations()

    async def pending_stats(self) -> PendingStats:
        return await self._inner.pending_stats()

    async def check(self) -> None:
        await self._inner.check()

    async def close(self) -> None:
        self._entries.clear()
        await self._inner.close()
