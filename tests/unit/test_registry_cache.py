"""The order cache: a burst of reads of one order costs one registry read, and nothing is
served older than its time to live (a change on another replica shows within it)."""

from __future__ import annotations

from datetime import timedelta

from gateway import lifecycle
from gateway.domain import OrderChannel, OrderState
from gateway.registry.cache import OrderCache
from tests.helpers.builders import creation, order_channel
from tests.helpers.clock import FakeClock
from tests.helpers.fakes import FakeRegistry

NO_CLAIM = timedelta(0)


class CountingRegistry(FakeRegistry):
    def __init__(self) -> None:
        super().__init__(FakeClock())
        self.reads = 0

    async def get(self, order_id: str) -> OrderChannel | None:
        self.reads += 1
        return await super().get(order_id)


class Ticks:
    """A settable monotonic clock for the cache."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_reads_within_the_ttl_cost_one_registry_read() -> None:
    inner, ticks = CountingRegistry(), Ticks()
    await inner.ensure(order_channel("o1"), creation(), claim_for=NO_CLAIM)
    cache = OrderCache(inner, ttl_s=0.5, clock=ticks)
    for _ in range(3):
        assert await cache.get("o1") is not None
        ticks.now += 0.1
    assert inner.reads == 1


async def test_a_change_elsewhere_shows_once_the_entry_expires() -> None:
    inner, ticks = CountingRegistry(), Ticks()
    await inner.ensure(order_channel("o1"), creation(), claim_for=NO_CLAIM)
    cache = OrderCache(inner, ttl_s=0.5, clock=ticks)
    assert (await cache.get("o1")).state is OrderState.OPEN  # type: ignore[union-attr]
    other_replica = inner.replica()
    await other_replica.change(
        "o1",
        lambda c: lifecycle.close(c, now=inner.clock(), service="s", reason=""),
        claim_for=NO_CLAIM,
    )
    ticks.now += 0.4
    assert (await cache.get("o1")).state is OrderState.OPEN  # type: ignore[union-attr]
    ticks.now += 0.2
    assert (await cache.get("o1")).state is OrderState.CLOSED  # type: ignore[union-attr]


async def test_a_change_through_the_cache_shows_at_once() -> None:
    inner, ticks = CountingRegistry(), Ticks()
    cache = OrderCache(inner, ttl_s=0.5, clock=ticks)
    await cache.ensure(order_channel("o1"), creation(), claim_for=NO_CLAIM)
    await cache.change(
        "o1",
        lambda c: lifecycle.close(c, now=inner.clock(), service="s", reason=""),
        claim_for=NO_CLAIM,
    )
    got = await cache.get("o1")
    assert got is not None and got.state is OrderState.CLOSED and inner.reads == 0


async def test_a_repeat_gets_the_order_as_recorded() -> None:
    cache = OrderCache(CountingRegistry(), clock=Ticks())
    recorded, _ = await cache.ensure(order_channel("o1"), creation(), claim_for=NO_CLAIM)
    again, created = await cache.ensure(
        order_channel("o1", seller="mallory"), creation(), claim_for=NO_CLAIM
    )
    assert not created and again is recorded  # the service refuses the other seller


async def test_lru_bound() -> None:
    inner, ticks = CountingRegistry(), Ticks()
    cache = OrderCache(inner, max_entries=2, clock=ticks)
    for name in ("a", "b", "c"):
        await cache.ensure(order_channel(name), creation(), claim_for=NO_CLAIM)
    assert len(cache) == 2
    await cache.get("a")  # evicted: read through
    assert inner.reads == 1
