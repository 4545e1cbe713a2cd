"""The outbox worker and inline attempts, on fakes."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from gateway.chat import ChatBackendError
from gateway.domain import SyncState
from gateway.outbox import ChannelSync, SyncPolicy
from tests.helpers.builders import order_channel
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
    await registry.ensure(channel, claim_for=timedelta(seconds=5))
    backend.fail_with = ChatBackendError("429", transient=True, retry_after_s=30.0)
    sync = ChannelSync(registry=registry, backend=backend, policy=POLICY, clock=clock)
    result = await sync.sync_inline(channel, budget_s=0.2)
    assert result.sync_state is SyncState.PENDING
    assert len(backend.calls) == 1  # no second call before the reset
    retry_in = (registry.next_attempt["ord-1"] - clock()).total_seconds()
    assert retry_in >= 30.0


async def test_worker_finishes_pending_orders_after_outage() -> None:
    clock = FakeClock()
    registry, backend = FakeRegistry(clock), FakeChatBackend()
    for i in range(5):
        channel = order_channel(f"ord-{i}", create_time=clock())
        await registry.ensure(channel, claim_for=timedelta(0))
    backend.fail_with = ChatBackendError("down", transient=True)
    sync = ChannelSync(registry=registry, backend=backend, policy=POLICY, clock=clock)
    stop = asyncio.Event()
    worker = asyncio.create_task(sync.run(stop))
    try:
        await eventually(lambda: sum(registry.failures.values()) >= 5, timeout_s=5, interval_s=0.01)
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
