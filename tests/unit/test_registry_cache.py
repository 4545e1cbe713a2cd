"""The synced-order cache never serves a pending order and never loses a conflict."""

from __future__ import annotations

from datetime import timedelta

from gateway.domain import OrderChannel, SyncState
from gateway.registry.cache import SyncedOrderCache
from tests.helpers.builders import order_channel
from tests.helpers.clock import FakeClock
from tests.helpers.fakes import FakeRegistry


class CountingRegistry(FakeRegistry):
    def __init__(self) -> None:
        super().__init__(FakeClock())
        self.reads = 0

    async def get(self, order_id: str) -> OrderChannel | None:
        self.reads += 1
        return await super().get(order_id)


async def test_pending_orders_always_read_through() -> None:
    inner = CountingRegistry()
    cache = SyncedOrderCache(inner)
    await cache.ensure(order_channel("o1"), claim_for=timedelta(0))
    for _ in range(3):
        got = await cache.get("o1")
        assert got is not None and got.sync_state is SyncState.PENDING
    assert inner.reads == 3 and len(cache) == 0


async def test_synced_orders_are_served_from_memory() -> None:
    inner = CountingRegistry()
    cache = SyncedOrderCache(inner)
    await cache.ensure(order_channel("o1"), claim_for=timedelta(0))
    await cache.mark_synced("o1")
    for _ in range(3):
        got = await cache.get("o1")
        assert got is not None and got.sync_state is SyncState.SYNCED
    assert inner.reads == 0


async def test_cached_order_is_returned_as_recorded() -> None:
    cache = SyncedOrderCache(CountingRegistry())
    await cache.ensure(order_channel("o1"), claim_for=timedelta(0))
    recorded = await cache.mark_synced("o1")
    again, created = await cache.ensure(
        order_channel("o1", seller="mallory"), claim_for=timedelta(0)
    )
    assert not created and again is recorded  # the service refuses the other seller


async def test_lru_bound() -> None:
    inner = CountingRegistry()
    cache = SyncedOrderCache(inner, max_entries=2)
    for name in ("a", "b", "c"):
        await cache.ensure(order_channel(name), claim_for=timedelta(0))
        await cache.mark_synced(name)
    assert len(cache) == 2
    await cache.get("a")  # evicted: read through
    assert inner.reads == 1
