"""The order's life against the Stream double, through the real stream-chat SDK: Stream
ends up exactly as the registry says (members, agents' roles, frozen, custom data) after
outages, a SIGKILL and a restart; drift is repaired; revocations bite at Stream."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from gateway.domain import SyncState
from tests.helpers.gateways import GatewayFactory
from tests.helpers.polling import eventually
from tests.helpers.processes import GatewayChildren, child_env
from tests.helpers.rpc import ORDER_SERVICE as ORDER
from tests.helpers.rpc import SUPPORT_TOOL as SUPPORT
from tests.helpers.rpc import WEB_BACKEND as WEB
from tests.stream_double import StreamDouble, StreamError

CID = "messaging:order-ord-s"


@pytest.fixture
async def gateway(start_gateway: GatewayFactory, stream_env: dict[str, str]) -> Gateway:
    return await start_gateway(stream_env)


async def place(stub: pb_grpc.ChatGatewayAsyncStub, order_id: str = "ord-s") -> pb.OrderChannel:
    reply = await stub.EnsureOrderChannel(
        pb.EnsureOrderChannelRequest(
            order_id=order_id,
            buyer=pb.Participant(user_id="buyer-1", display_name="Ana"),
            seller=pb.Participant(user_id="seller-1", display_name="Sam"),
        ),
        metadata=ORDER,
        timeout=5,
    )
    return reply.channel


def held(double: StreamDouble, cid: str = CID) -> tuple[dict[str, str], bool, object]:
    """(member -> channel_role, frozen, order_id custom data) as the double holds it."""
    channel = double.channels[cid]
    return (
        {uid: channel.role_of(uid) for uid in channel.members},
        channel.frozen,
        channel.data.get("order_id"),
    )


async def test_close_freezes_the_channel_with_a_partial_update(
    stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    await place(stub)
    reply = await stub.CloseOrderChannel(
        pb.CloseOrderChannelRequest(order_id="ord-s", reason="delivered"), metadata=ORDER, timeout=5
    )
    assert reply.channel.sync_state == pb.SYNC_STATE_SYNCED
    members, frozen, order_id = held(stream_double)
    assert frozen and order_id == "ord-s"  # the order_id custom data survived
    assert members == {"buyer-1": "channel_member", "seller-1": "channel_member"}
    assert not stream_double.calls_of("update_channel")  # never a full update


async def test_a_dispute_makes_the_agent_a_moderator_and_unfreezes(
    stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    await place(stub)
    await stub.CloseOrderChannel(
        pb.CloseOrderChannelRequest(order_id="ord-s"), metadata=ORDER, timeout=5
    )
    reply = await stub.OpenDispute(
        pb.OpenDisputeRequest(
            order_id="ord-s", agent=pb.Participant(user_id="sue-1", display_name="Sue")
        ),
        metadata=SUPPORT,
        timeout=5,
    )
    assert reply.channel.sync_state == pb.SYNC_STATE_SYNCED
    members, frozen, _ = held(stream_double)
    assert not frozen
    assert members == {
        "buyer-1": "channel_member",
        "seller-1": "channel_member",
        "sue-1": "channel_moderator",
    }
    assert stream_double.users["sue-1"]["name"] == "Sue"


async def test_drift_repair_keeps_agents_removes_strangers_restores_frozen(
    gateway: Gateway, stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    await place(stub)
    await stub.OpenDispute(
        pb.OpenDisputeRequest(order_id="ord-s", agent=pb.Participant(user_id="sue-1")),
        metadata=SUPPORT,
        timeout=5,
    )
    await stub.CloseOrderChannel(
        pb.CloseOrderChannelRequest(order_id="ord-s"), metadata=ORDER, timeout=5
    )
    # Someone edits the channel by hand: a stranger in, the agent demoted, unfrozen.
    channel = stream_double.channels[CID]
    stream_double.users.setdefault("mallory", {"id": "mallory"})
    channel.members.append("mallory")
    channel.roles["sue-1"] = "channel_member"
    channel.frozen = False
    await gateway.registry.resync(["ord-s"])
    gateway.sync.wake()

    async def repaired() -> bool:
        return held(stream_double) == (
            {
                "buyer-1": "channel_member",
                "seller-1": "channel_member",
                "sue-1": "channel_moderator",
            },
            True,
            "ord-s",
        )

    await eventually(repaired, timeout_s=10.0)


@pytest.mark.parametrize("step", ["close", "dispute"])
async def test_a_stream_outage_leaves_the_change_pending_until_stream_is_back(
    gateway: Gateway, stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble, step: str
) -> None:
    await place(stub)
    await stream_double.stop()
    if step == "close":
        closed = await stub.CloseOrderChannel(
            pb.CloseOrderChannelRequest(order_id="ord-s"), metadata=ORDER, timeout=5
        )
        answered = closed.channel
    else:
        disputed = await stub.OpenDispute(
            pb.OpenDisputeRequest(order_id="ord-s", agent=pb.Participant(user_id="sue-1")),
            metadata=SUPPORT,
            timeout=5,
        )
        answered = disputed.channel
    assert answered.sync_state == pb.SYNC_STATE_PENDING
    await stream_double.start()

    async def synced() -> bool:
        channel = await gateway.registry.get("ord-s")
        return channel is not None and channel.sync_state is SyncState.SYNCED

    await eventually(synced, timeout_s=10.0)
    members, frozen, order_id = held(stream_double)
    if step == "close":
        assert frozen and set(members) == {"buyer-1", "seller-1"}
    else:
        assert not frozen and members["sue-1"] == "channel_moderator"
    assert order_id == "ord-s"


async def test_revocation_bites_at_stream_and_spares_later_tokens(
    stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    await place(stub)
    before = await stub.IssueToken(pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB, timeout=5)
    assert stream_double.check_user_token(before.token) == "buyer-1"
    reply = await stub.RevokeUserTokens(
        pb.RevokeUserTokensRequest(user_id="buyer-1"), metadata=WEB, timeout=5
    )
    assert reply.sync_state == pb.SYNC_STATE_SYNCED
    after = await stub.IssueToken(pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB, timeout=5)
    with pytest.raises(StreamError) as refused:
        stream_double.check_user_token(before.token)
    assert refused.value.status == 401
    assert stream_double.check_user_token(after.token) == "buyer-1"
    revoked = stream_double.revoked_before("buyer-1")
    assert revoked is not None and int(revoked.timestamp()) == reply.revoke_time.seconds


async def test_a_revocation_during_an_outage_is_finished_later(
    gateway: Gateway, stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    await place(stub)
    old = await stub.IssueToken(pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB, timeout=5)
    await stream_double.stop()
    reply = await stub.RevokeUserTokens(
        pb.RevokeUserTokensRequest(user_id="buyer-1"), metadata=WEB, timeout=5
    )
    assert reply.sync_state == pb.SYNC_STATE_PENDING
    await stream_double.start()

    async def done() -> bool:
        return not await gateway.registry.pending_revocations()

    await eventually(done, timeout_s=10.0)
    with pytest.raises(StreamError):
        stream_double.check_user_token(old.token)


async def test_tokens_are_not_issued_ahead_of_stream_s_clock(
    stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble
) -> None:
    # Stream's clock runs 4 s behind ours: with iat 5 s in the past, the token still works.
    stream_double.clock = lambda: time.time() - 4
    token = await stub.IssueToken(pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB, timeout=5)
    assert stream_double.check_user_token(token.token) == "buyer-1"


# -- across a SIGKILL and a restart ----------------------------------------------------------


@pytest.mark.slow
async def test_pending_lifecycle_changes_survive_sigkill_and_restart(
    stream_double: StreamDouble,
    stream_env: dict[str, str],
    gateway_children: GatewayChildren,
    tmp_path: Path,
) -> None:
    env = child_env(tmp_path, stream_env)
    first = await gateway_children.start(env, name="first")
    async with grpc.aio.insecure_channel(first.grpc_addr) as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        await place(stub)
        old = await stub.IssueToken(
            pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB, timeout=5
        )
        await stream_double.stop()
        # One after the other: a dispute after the close would reopen the chat.
        disputed = await stub.OpenDispute(
            pb.OpenDisputeRequest(order_id="ord-s", agent=pb.Participant(user_id="sue-1")),
            metadata=SUPPORT,
            timeout=5,
        )
        assert disputed.channel.sync_state == pb.SYNC_STATE_PENDING
        closed = await stub.CloseOrderChannel(
            pb.CloseOrderChannelRequest(order_id="ord-s"), metadata=ORDER, timeout=5
        )
        assert closed.channel.sync_state == pb.SYNC_STATE_PENDING
        revoked = await stub.RevokeUserTokens(
            pb.RevokeUserTokensRequest(user_id="buyer-1"), metadata=WEB, timeout=5
        )
        assert revoked.sync_state == pb.SYNC_STATE_PENDING
    assert await first.kill() == -signal.SIGKILL

    await stream_double.start()
    second = await gateway_children.start(env, name="second")

    async def exactly_right() -> bool:
        if CID not in stream_double.channels or stream_double.revoked_before("buyer-1") is None:
            return False
        return held(stream_double) == (
            {
                "buyer-1": "channel_member",
                "seller-1": "channel_member",
                "sue-1": "channel_moderator",
            },
            True,
            "ord-s",
        )

    await eventually(exactly_right, timeout_s=20.0)
    with pytest.raises(StreamError):
        stream_double.check_user_token(old.token)
    assert stream_double.creations == {CID: 1}
    assert await second.terminate() == 0
