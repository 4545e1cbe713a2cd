"""Stream mode end to end: a real gateway on loopback, the real stream-chat SDK, and the
Stream double (tests/stream_double) standing in for Stream's REST API.

Every Stream call is counted at the double, never at the SDK.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from gateway.channels import channel_id_for
from gateway.chat import ChatBackendError
from gateway.chat.stream import StreamChatBackend
from gateway.domain import Participant, SyncState
from gateway.registry.sqlite import SqliteRegistry
from tests.helpers.builders import ensure_request, order_channel, participant
from tests.helpers.gateways import GatewayFactory, SettingsFactory
from tests.helpers.polling import eventually
from tests.helpers.rpc import ORDER_SERVICE, WEB_BACKEND
from tests.stream_double import StreamDouble


@pytest.fixture
async def stream_gateway(start_gateway: GatewayFactory, stream_env: dict[str, str]) -> Gateway:
    gw = await start_gateway(stream_env)
    assert gw.settings.stream.backend == "stream"
    assert isinstance(gw.backend, StreamChatBackend)
    return gw


@pytest.fixture
async def stub(stream_gateway: Gateway) -> AsyncIterator[pb_grpc.ChatGatewayAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stream_gateway.grpc_port}") as ch:
        yield pb_grpc.ChatGatewayStub(ch)


def _request(order_id: str) -> pb.EnsureOrderChannelRequest:
    """Buyer and seller with display names, the seller with an avatar."""
    return ensure_request(
        order_id,
        participant("buyer-1", "buyer-1 name"),
        participant("seller-1", "seller-1 name", "https://cdn.example.com/s.png"),
    )


def _synced(gw: Gateway, *order_ids: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        for order_id in order_ids:
            channel = await gw.registry.get(order_id)
            if channel is None or channel.sync_state is not SyncState.SYNCED:
                return False
        return True

    return check


async def test_new_order_is_synced_in_two_calls(
    stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    reply = await stub.EnsureOrderChannel(_request("ord-1"), metadata=ORDER_SERVICE, timeout=5)

    assert reply.created
    assert reply.channel.sync_state == pb.SYNC_STATE_SYNCED
    assert reply.channel.cid == "messaging:order-ord-1"
    assert [(c.method, c.path) for c in stream_double.calls] == [
        ("POST", "/users"),
        ("POST", "/channels/messaging/order-ord-1/query"),
    ]


async def test_new_order_creates_channel_with_both_members(
    stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    await stub.EnsureOrderChannel(_request("ord-1"), metadata=ORDER_SERVICE, timeout=5)

    stored = stream_double.channels["messaging:order-ord-1"]
    assert sorted(stored.members) == ["buyer-1", "seller-1"]
    assert stored.data["order_id"] == "ord-1"
    assert stored.created_by_id == "tradetrust-system"


async def test_new_order_upserts_both_users(
    stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    await stub.EnsureOrderChannel(_request("ord-1"), metadata=ORDER_SERVICE, timeout=5)

    assert stream_double.users["buyer-1"]["name"] == "buyer-1 name"
    assert stream_double.users["seller-1"]["name"] == "seller-1 name"
    assert stream_double.users["seller-1"]["image"] == "https://cdn.example.com/s.png"
    assert "image" not in stream_double.users["buyer-1"]


async def test_repeat_authorize_and_token_make_no_stream_call(
    stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    await stub.EnsureOrderChannel(_request("ord-2"), metadata=ORDER_SERVICE, timeout=5)
    before = len(stream_double.calls)
    assert before == 2

    again = await stub.EnsureOrderChannel(_request("ord-2"), metadata=ORDER_SERVICE, timeout=5)
    answer = await stub.AuthorizeParticipant(
        pb.AuthorizeParticipantRequest(order_id="ord-2", user_id="buyer-1"), metadata=WEB_BACKEND
    )
    token = await stub.IssueToken(pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB_BACKEND)

    assert not again.created and again.channel.sync_state == pb.SYNC_STATE_SYNCED
    assert answer.allowed and token.token
    assert len(stream_double.calls) == before


async def test_long_order_id_maps_to_hashed_channel_id(
    stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    order_id = "o" * 120
    reply = await stub.EnsureOrderChannel(_request(order_id), metadata=ORDER_SERVICE, timeout=5)

    assert reply.channel.channel_id == channel_id_for(order_id)
    assert reply.channel.channel_id.startswith("orderh-") and len(reply.channel.channel_id) <= 64
    assert stream_double.channels[reply.channel.cid].data["order_id"] == order_id


async def test_stream_down_returns_pending_fast_then_worker_syncs(
    stream_gateway: Gateway, stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    await stream_double.stop()
    started = time.monotonic()
    reply = await stub.EnsureOrderChannel(_request("ord-3"), metadata=ORDER_SERVICE, timeout=2)
    elapsed = time.monotonic() - started

    assert reply.created
    assert reply.channel.sync_state == pb.SYNC_STATE_PENDING
    assert elapsed < 1.0  # inline budget 0.6 s, deadline 2 s
    assert stream_double.calls == []

    await asyncio.sleep(0.5)  # the worker keeps failing meanwhile
    await stream_double.start()
    await eventually(_synced(stream_gateway, "ord-3"))  # no new RPC

    assert sorted(stream_double.channels["messaging:order-ord-3"].members) == [
        "buyer-1",
        "seller-1",
    ]
    assert stream_double.creations == {"messaging:order-ord-3": 1}


async def test_5xx_is_retried_inside_the_rpc(
    stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    stream_double.inject(503)
    reply = await stub.EnsureOrderChannel(_request("ord-4"), metadata=ORDER_SERVICE, timeout=5)

    assert reply.channel.sync_state == pb.SYNC_STATE_SYNCED
    assert [c.status for c in stream_double.calls] == [503, 200, 200]


async def test_slow_stream_yields_pending_within_deadline_then_syncs(
    stream_gateway: Gateway, stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    stream_double.delay_s = 3.0  # beyond the 1 s call timeout
    started = time.monotonic()
    reply = await stub.EnsureOrderChannel(_request("ord-5"), metadata=ORDER_SERVICE, timeout=2)

    assert reply.channel.sync_state == pb.SYNC_STATE_PENDING
    assert time.monotonic() - started < 1.0
    stream_double.delay_s = 0.0
    await eventually(_synced(stream_gateway, "ord-5"))
    assert "messaging:order-ord-5" in stream_double.channels


async def test_rate_limit_storm_no_call_before_reset(
    stream_gateway: Gateway, stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    reset = stream_double.rate_limit(1.0)
    first = await stub.EnsureOrderChannel(_request("ord-6"), metadata=ORDER_SERVICE, timeout=2)
    assert first.channel.sync_state == pb.SYNC_STATE_PENDING
    assert [c.status for c in stream_double.calls] == [429]

    # More orders during the storm: answered PENDING, and not one request reaches Stream.
    others = [f"ord-6{i}" for i in range(5)]
    for order_id in others:
        reply = await stub.EnsureOrderChannel(_request(order_id), metadata=ORDER_SERVICE, timeout=2)
        assert reply.channel.sync_state == pb.SYNC_STATE_PENDING
    assert len(stream_double.calls) == 1

    await eventually(_synced(stream_gateway, "ord-6", *others), timeout_s=6.0)
    later = stream_double.calls[1:]
    assert later and all(c.time >= reset for c in later), [(c.time, reset) for c in later]
    assert [c.status for c in later] == [200] * len(later)
    assert len(stream_double.channels) == 6


async def test_membership_drift_is_repaired(
    stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    # Made by hand in the dashboard: the seller is missing, a stranger is in it.
    stream_double.put_channel("messaging", "order-ord-7", ["buyer-1", "mallory"])

    reply = await stub.EnsureOrderChannel(_request("ord-7"), metadata=ORDER_SERVICE, timeout=5)

    assert reply.channel.sync_state == pb.SYNC_STATE_SYNCED
    stored = stream_double.channels["messaging:order-ord-7"]
    assert sorted(stored.members) == ["buyer-1", "seller-1"]
    assert stored.data["order_id"] == "ord-7"
    bodies = [c.body for c in stream_double.calls_to("POST", "/channels/messaging/order-ord-7")]
    assert {"add_members": [{"user_id": "seller-1"}], "message": None} in bodies
    assert {"remove_members": ["mallory"], "message": None} in bodies


async def test_wrong_secret_is_a_permanent_401(
    make_settings: SettingsFactory, stream_env: dict[str, str], stream_double: StreamDouble
) -> None:
    settings = make_settings(
        env={**stream_env, "GETSTREAM_API_SECRET": "not-the-secret-of-this-stream-app-at-all"}
    )
    backend = await StreamChatBackend.open(settings.stream)
    channel = order_channel("ord-8")
    try:
        with pytest.raises(ChatBackendError) as failure:
            await backend.sync_channel(channel)
    finally:
        await backend.close()

    assert not failure.value.transient
    assert "HTTP 401" in str(failure.value)
    assert [c.status for c in stream_double.calls] == [401]
    assert stream_double.users == {}


async def test_shutdown_is_bounded_while_stream_hangs(
    start_gateway: GatewayFactory,
    make_settings: SettingsFactory,
    stream_env: dict[str, str],
    stream_double: StreamDouble,
) -> None:
    gw = await start_gateway({**stream_env, "CHAT_GATEWAY_STREAM_TIMEOUT": "30"})
    stream_double.delay_s = 60.0
    channel, _ = await gw.service.ensure_order_channel(
        "ord-9", Participant("buyer-1"), Participant("seller-1"), time_remaining_s=1.0
    )
    assert channel.sync_state is SyncState.PENDING
    await eventually(lambda: stream_double.requests_seen >= 1)  # a Stream call hangs

    started = time.monotonic()
    await gw.stop(grace_s=0.3)
    assert time.monotonic() - started < 2.0
    stored = await _reopened_state(make_settings, "ord-9")
    assert stored is SyncState.PENDING  # still owed to Stream, picked up at the next start


async def _reopened_state(make_settings: SettingsFactory, order_id: str) -> SyncState | None:
    registry = await SqliteRegistry.open(
        make_settings().registry.database_url.removeprefix("sqlite:///")
    )
    try:
        channel = await registry.get(order_id)
    finally:
        await registry.close()
    return None if channel is None else channel.sync_state
