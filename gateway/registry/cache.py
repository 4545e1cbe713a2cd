"""A read-through cache of *synced* orders in front of any :class:`OrderRegistry`.

Safe across replicas without invalidation: an order's participants never change once
recorded, and ``SYNCED`` is a terminal state. So a synced entry can never go stale, while
pending orders, whose state another replica may change, are always read from the
registry. This keeps ``AuthorizeParticipant`` and repeated ``EnsureOrderChannel`` calls of
live orders off the database and its thread.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.domain import OrderChannel, SyncState
from gateway.lru import BoundedCache
from gateway.registry import ClaimedOrder, OrderRegistry, PendingStats


class SyncedOrderCache:
    """:class:`gateway.registry.OrderRegistry` decorator with an LRU of synced orders."""

    def __init__(self, inner: OrderRegistry, *, max_entries: int = 50_000) -> None:
        self._inner = inner
        self._entries: BoundedCache[str, OrderChannel] = BoundedCache(max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def _remember(self, channel: OrderChannel) -> None:
        if channel.sync_state is SyncState.SYNCED:
            self._entries.put(channel.order_id, channel)

    async def ensure(
        self, channel: OrderChannel, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        known = self._entries.get(channel.order_id)
        if known is not None:
            return known, False
        stored, created = await self._inner.ensure(channel, claim_for=claim_for)
        self._remember(stored)
        return stored, created

    async def get(self, order_id: str) -> OrderChannel | None:
        known = self._entries.get(order_id)
        if known is not None:
            return known
        channel = await self._inner.get(order_id)
        if channel is not None:
            self._remember(channel)
        return channel

    async def mark_synced(self, order_id: str) -> OrderChannel:
        channel = await self._inner.mark_synced(order_id)
        self._remember(channel)
        return channel

    async def record_failure(self, order_id: str, *, retry_at: datetime, error: str) -> None:
        await self._inner.record_failure(order_id, retry_at=retry_at, error=error)

    async def claim_pending(self, *, limit: int, lease: timedelta) -> list[ClaimedOrder]:
        return await self._inner.claim_pending(limit=limit, lease=lease)

    async def pending_stats(self) -> PendingStats:
        return await self._inner.pending_stats()

    async def close(self) -> None:
        self._entries.clear()
        await self._inner.close()
