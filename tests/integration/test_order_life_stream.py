"""The order's life against the Stream double, through the real stream-chat SDK: Stream
ends up exactly as the registry says (members, agents' roles, frozen, custom data) after
outages, a SIGKILL and a restart; drift is repaired; revocations bite at Stream."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from gateway.config import DEV_ORDER_SERVICE_KEY, DEV_SUPPORT_TOOL_KEY, DEV_WEB_BACKEND_KEY
from gateway.domain import SyncState
from tests.conftest import SettingsFactory
from tests.gateway_process import clean_env, logged_grpc_port, spawn
from tests.stream_double import StreamDouble, StreamError

ORDER = (("authorization", f"Bearer {DEV_ORDER_SERVICE_KEY}"),)
WEB = (("authorization", f"Bearer {DEV_WEB_BACKEND_KEY}"),)
SUPPORT = (("authorization", f"Bearer {DEV_SUPPORT_TOOL_KEY}"),)
CID = "messaging:order-ord-s"


@pytest.fixture
async def gateway(
    make_settings: SettingsFactory, stream_env: dict[str, str]
) -> AsyncIterator[Gateway]:
    async with Gateway(make_settings(env=stream_env)) as gw:
        yield gw


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[pb_grpc.ChatGatewayAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield pb_grpc.ChatGatewayStub(channel)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / 0.05) + 1):
        if await check():
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    pytest.fail(f"not within {timeout_s}s")


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

    await eventually(repaired)


@pytest.mark.parametrize("step", ["close", "dispute"])
async def test_a_stream_outage_leaves_the_change_pending_until_stream_is_back(
    gateway: Gateway, stub: pb_grpc.ChatGatewayAsyncStub, stream_double: StreamDouble, step: str
) -> None:
    await place(stub)
    await stream_double.stop()
    if step == "close":
        reply = await stub.CloseOrderChannel(
            pb.CloseOrderChannelRequest(order_id="ord-s"), metadata=ORDER, timeout=5
        )
    else:
        reply = await stub.OpenDispute(
            pb.OpenDisputeRequest(order_id="ord-s", agent=pb.Participant(user_id="sue-1")),
            metadata=SUPPORT,
            timeout=5,
        )
    assert reply.channel.sync_state == pb.SYNC_STATE_PENDING
    await stream_double.start()

    async def synced() -> bool:
        channel = await gateway.registry.get("ord-s")
        return channel is not None and channel.sync_state is SyncState.SYNCED

    await eventually(synced)
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

    await eventually(done)
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


class Process:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port


@pytest.fixture
async def processes() -> AsyncIterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for child in started:
            if child.proc.returncode is None:
                child.proc.kill()
                await child.proc.wait()


async def _start(env: dict[str, str], log: Path, processes: list[Process]) -> Process:
    proc = await spawn(env, log, dev=True)
    port = await logged_grpc_port(proc, log, time.monotonic() + 20.0)
    assert port, log.read_text(errors="replace")
    child = Process(proc, port)
    processes.append(child)
    return child


@pytest.mark.slow
async def test_pending_lifecycle_changes_survive_sigkill_and_restart(
    stream_double: StreamDouble,
    stream_env: dict[str, str],
    processes: list[Process],
    tmp_path: Path,
) -> None:
    env = clean_env(
        {
            **stream_env,
            "CHAT_GATEWAY_GRPC_ADDR": "127.0.0.1:0",
            "CHAT_GATEWAY_HTTP_ADDR": "127.0.0.1:0",
        },
        tmp_path,
    )
    first = await _start(env, tmp_path / "first.log", processes)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        await place(stub)
        old = await stub.IssueToken(
            pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB, timeout=5
        )
        await stream_double.stop()
        for call in (
            stub.OpenDispute(
                pb.OpenDisputeRequest(order_id="ord-s", agent=pb.Participant(user_id="sue-1")),
                metadata=SUPPORT,
                timeout=5,
            ),
            stub.CloseOrderChannel(
                pb.CloseOrderChannelRequest(order_id="ord-s"), metadata=ORDER, timeout=5
            ),
        ):
            assert (await call).channel.sync_state == pb.SYNC_STATE_PENDING
        revoked = await stub.RevokeUserTokens(
            pb.RevokeUserTokensRequest(user_id="buyer-1"), metadata=WEB, timeout=5
        )
        assert revoked.sync_state == pb.SYNC_STATE_PENDING
    first.proc.send_signal(signal.SIGKILL)
    assert await first.proc.wait() == -signal.SIGKILL

    await stream_double.start()
    second = await _start(env, tmp_path / "second.log", processes)

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

    await eventually(exactly_right, timeout_s=20)
    with pytest.raises(StreamError):
        stream_double.check_user_token(old.token)
    assert stream_double.creations == {CID: 1}
    second.proc.send_signal(signal.SIGTERM)
    assert await second.proc.wait() == 0
