"""UNAVAILABLE is retried by the channel's service-config retry policy, and calls queue
(wait_for_ready) through a gateway restart, finishing within their deadline."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from tradetrust.chat.client import (
    AsyncChatGatewayClient,
    ChatGatewayClient,
    ClientOptions,
    RetryPolicy,
    SyncState,
    UnavailableError,
)

from gateway.config import DEV_ORDER_SERVICE_KEY
from tests.helpers.fake_gateway import FakeGateway
from tests.helpers.processes import GatewayProcess

ORDER_KEY = DEV_ORDER_SERVICE_KEY
DEADLINE_S = 15.0
OUTAGE_S = 2.0  # longer than the whole retry backoff budget (~0.1+0.2+0.4+0.8 s at most)


async def test_unavailable_is_retried_by_the_channel(fake: FakeGateway) -> None:
    fake.fail_first = 2
    async with AsyncChatGatewayClient(fake.addr, "k") as client:
        ensured = await client.ensure_order_channel("o-1", "b", "s")
    assert ensured.channel.order_id == "o-1"
    assert fake.attempts["EnsureOrderChannel"] == 3  # two UNAVAILABLE, then OK


async def test_every_rpc_is_covered_by_the_retry_policy(fake: FakeGateway) -> None:
    fake.fail_first = 1
    async with AsyncChatGatewayClient(fake.addr, "k") as client:
        await client.issue_token("u")
        await client.ensure_order_channel("o-1", "b", "s")
        await client.authorize_participant("o-1", "b")
        await client.get_order_channel("o-1")
        await client.close_order_channel("o-1")
        await client.open_dispute("o-1", "sue")
        await client.revoke_user_tokens("u")
    assert fake.attempts == dict.fromkeys(
        (
            "IssueToken",
            "EnsureOrderChannel",
            "AuthorizeParticipant",
            "GetOrderChannel",
            "CloseOrderChannel",
            "OpenDispute",
            "RevokeUserTokens",
        ),
        2,
    )


async def test_without_a_retry_policy_the_first_unavailable_surfaces(fake: FakeGateway) -> None:
    fake.fail_first = 1
    async with AsyncChatGatewayClient(fake.addr, "k", options=ClientOptions(retry=None)) as client:
        with pytest.raises(UnavailableError, match="scripted failure 1"):
            await client.ensure_order_channel("o-1", "b", "s")
    assert fake.attempts["EnsureOrderChannel"] == 1


async def test_other_codes_are_not_retried(fake: FakeGateway) -> None:
    fake.fail_first, fake.fail_code = 1, grpc.StatusCode.INTERNAL
    async with AsyncChatGatewayClient(fake.addr, "k") as client:
        with pytest.raises(Exception, match="INTERNAL"):
            await client.issue_token("u")
    assert fake.attempts["IssueToken"] == 1


async def test_retries_give_up_after_max_attempts(fake: FakeGateway) -> None:
    fake.fail_first = 100
    options = ClientOptions(retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.01))
    async with AsyncChatGatewayClient(fake.addr, "k", options=options) as client:
        with pytest.raises(UnavailableError):
            await client.issue_token("u")
    assert fake.attempts["IssueToken"] == 3


async def test_sync_client_retries_unavailable(fake: FakeGateway) -> None:
    fake.fail_first = 2

    def call() -> str:
        with ChatGatewayClient(fake.addr, "k") as client:
            return client.issue_token("u").user_id

    assert await asyncio.to_thread(call) == "u"
    assert fake.attempts["IssueToken"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["async", "sync"])
async def test_call_rides_over_a_gateway_restart(own_gateway: GatewayProcess, flavour: str) -> None:
    """The gateway is down when the call starts and comes back on the same port
    ``OUTAGE_S`` later; the call succeeds after the restart, within its deadline."""
    own_gateway.start()
    options = ClientOptions(deadline_s=DEADLINE_S)
    async_client = AsyncChatGatewayClient(own_gateway.addr, ORDER_KEY, options=options)
    sync_client = ChatGatewayClient(own_gateway.addr, ORDER_KEY, options=options)
    try:
        # Connected and working before the outage.
        await async_client.ensure_order_channel("ord-before", "b-1", "s-1")
        await asyncio.to_thread(sync_client.ensure_order_channel, "ord-before", "b-1", "s-1")
        own_gateway.stop()

        started = time.monotonic()
        if flavour == "async":
            call = asyncio.ensure_future(
                async_client.ensure_order_channel("ord-restart", "b-1", "s-1")
            )
        else:
            call = asyncio.ensure_future(
                asyncio.to_thread(sync_client.ensure_order_channel, "ord-restart", "b-1", "s-1")
            )
        await asyncio.sleep(OUTAGE_S)
        assert not call.done(), f"call finished while the gateway was down: {call}"

        serving_at = await asyncio.to_thread(own_gateway.start)
        ensured = await asyncio.wait_for(call, timeout=DEADLINE_S + 5)
        finished = time.monotonic()
    finally:
        await async_client.close()
        sync_client.close()

    assert ensured.created and ensured.channel.order_id == "ord-restart"
    assert ensured.channel.sync_state is SyncState.SYNCED
    elapsed, recovery = finished - started, finished - serving_at
    assert elapsed < DEADLINE_S, f"took {elapsed:.2f}s, deadline {DEADLINE_S}s"
    # After SERVING, the next reconnect attempt comes within one reconnect backoff:
    # the reconnect delay is capped at max_reconnect_backoff (+20% jitter).
    max_wait_s = options.max_reconnect_backoff_ms / 1000 * 1.2 + 1.5
    assert recovery < max_wait_s, f"recovery {recovery:.2f}s"
    print(f"\n[{flavour}] restart: call took {elapsed:.2f}s, {recovery:.2f}s after SERVING")  # noqa: T201


@pytest.mark.slow
async def test_without_wait_for_ready_an_outage_fails_fast(own_gateway: GatewayProcess) -> None:
    """Control: retries alone span ~1.5 s of backoff at most, so an outage longer than that
    surfaces as UNAVAILABLE long before the deadline. This is why the client defaults to
    wait_for_ready=True."""
    own_gateway.start()
    options = ClientOptions(deadline_s=DEADLINE_S, wait_for_ready=False)
    async with AsyncChatGatewayClient(own_gateway.addr, ORDER_KEY, options=options) as client:
        await client.ensure_order_channel("ord-before", "b-1", "s-1")
        own_gateway.stop()
        started = time.monotonic()
        with pytest.raises(UnavailableError):
            await client.ensure_order_channel("ord-down", "b-1", "s-1")
        assert time.monotonic() - started < DEADLINE_S / 2
