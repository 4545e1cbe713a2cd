"""The outbox worker and inline attempts, on fakes."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from gateway.chat import ChatBackendError
from gateway.domain import SyncState
from gateway.outbox import ChannelSync, SyncPolicy
from tests.helpers.builders import creation, order_channel
from tests.helpers.clock import FakeClock
from tests.helpers.fakes import FakeChatBackend, FakeRegistry
from tests.helpers.polling import eventually

POLICY = SyncPolicy(backoff_base_s=0.001, poll_interval_s=0.01, attempt_timeout_s=0.5)


def test_backoff_grows_and_is_capped() -> None:
    policy = SyncPolicy(backoff_base_s=1.0, backoff_cap_s=8.0)
    rng = random.Random(7)
    delays = [policy.backoff_s(n, rng) for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(8.0, 2.0 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling


async def test_inline_honours_retry_after_beyond_budget() -> None:
    clock = FakeClock()
    registry, backend = FakeRegistry(clock), FakeChatBackend()
    channel = order_channel(create_time=clock())
    await registry.ensure(channel, creation(clock()), claim_for=timedelta(seconds=5))
    backend.fail_with = ChatBackendError("429", transient=True, retry_after_s=30.0)
    sync = ChannelSync(registry=registry, backend=backend, policy=POLICY, clock=clock)
    result = await sync.sync_inline(channel, budget_s=0.2)
    assert result.sync_state is SyncState.PENDING
    assert len(backend.synced) == 1  # no second call before the reset
    retry_in = (registry.next_attempt("ord-1") - clock()).total_seconds()
    assert retry_in >= 30.0


async def test_worker_finishes_pending_orders_after_outage() -> None:
    clock = FakeClock()
    registry, backend = FakeRegistry(clock), FakeChatBackend()
    for i in range(5):
        channel = order_channel(f"ord-{i}", create_time=clock())
        await registry.ensure(channel, creation(clock()), claim_for=timedelta(0))
    backend.fail_with = ChatBackendError("down", transient=True)
    sync = ChannelSync(registry=registry, backend=backend, policy=POLICY, clock=clock)
    stop = asyncio.Event()
    worker = asyncio.create_task(sync.run(stop))
    try:
        await eventually(
            lambda: sum(registry.failures(f"ord-{i}") for i in range(5)) >= 5,
            timeout_s=5,
            interval_s=0.01,
        )
        backend.fail_with = None
        clock.advance(3600)  # every retry is now due
        sync.wake()
        await eventually(
            lambda: not any(c.sync_state is SyncState.PENDING for c in registry.rows.values()),
            timeout_s=5,
            interval_s=0.01,
        )
    finally:
        stop.set()
        await asyncio.wait_for(worker, 5)
    assert set(backend.channels) == {f"messaging:order-ord-{i}" for i in range(5)}
    assert (await registry.pending_stats()).count == 0


async def test_a_failure_never_brings_the_next_attempt_forward() -> None:
    clock = FakeClock()
    registry, backend = FakeRegistry(clock), FakeChatBackend()
    await registry.ensure(
        order_channel(create_time=clock()), creation(clock()), claim_for=timedelta(0)
    )
    backend.fail_with = ChatBackendError("down", transient=True)
    policy = SyncPolicy(backoff_base_s=1.0, backoff_cap_s=1000.0, attempt_timeout_s=0.5)
    sync = ChannelSync(registry=registry, backend=backend, policy=policy, clock=clock)
    delays = []
    for _ in range(6):
        clock.advance(2000)  # due again
        result = await sync.sync_claimable("ord-1", budget_s=0.05)
        assert result is not None and result.sync_state is SyncState.PENDING
        delays.append((registry.next_attempt("ord-1") - clock()).total_seconds())
    assert registry.failures("ord-1") == 6 and len(backend.synced) == 6
    assert all(later >= earlier / 2 for earlier, later in zip(delays, delays[1:], strict=False))
    assert delays[-1] >= 16.0  # 2**5 / 2: the backoff grew with every failure


async def test_concurrent_callers_share_one_inline_attempt() -> None:
    clock = FakeClock()
    registry, backend = FakeRegistry(clock), FakeChatBackend()
    await registry.ensure(
        order_channel(create_time=clock()), creation(clock()), claim_for=timedelta(0)
    )
    sync = ChannelSync(registry=registry, backend=backend, policy=POLICY, clock=clock)
    results = await asyncio.gather(*(sync.sync_claimable("ord-1", 1.0) for _ in range(20)))
    assert backend.synced == ["ord-1"]
    assert all(r is not None and r.sync_state is SyncState.SYNCED for r in results)


async def test_a_backing_off_order_is_not_attempted_inline() -> None:
    clock = FakeClock()
    registry, backend = FakeRegistry(clock), FakeChatBackend()
    await registry.ensure(
        order_channel(create_time=clock()), creation(clock()), claim_for=timedelta(0)
    )
    await registry.record_failure("ord-1", retry_at=clock() + timedelta(seconds=60), error="x")
    sync = ChannelSync(registry=registry, backend=backend, policy=POLICY, clock=clock)
    assert await sync.sync_claimable("ord-1", 1.0) is None
    assert backend.synced == []
