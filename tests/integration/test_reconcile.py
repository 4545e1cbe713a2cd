"""``python -m gateway reconcile`` as operators run it: a real process, on the registry a
real gateway wrote, against the Stream double through the real SDK."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from tests.helpers.gateways import GatewayFactory
from tests.helpers.processes import REPO, gateway_environ
from tests.helpers.rpc import ORDER_SERVICE as ORDER
from tests.helpers.rpc import SUPPORT_TOOL as SUPPORT
from tests.helpers.rpc import WEB_BACKEND as WEB
from tests.stream_double import StreamDouble


@pytest.fixture
def settings_env(stream_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The gateway's and the command's settings: the double, one SQLite file."""
    return {**stream_env, "CHAT_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}"}


@pytest.fixture
def env(settings_env: dict[str, str]) -> dict[str, str]:
    """The command's process environment."""
    return gateway_environ(settings_env)


@pytest.fixture
async def gateway(start_gateway: GatewayFactory, settings_env: dict[str, str]) -> Gateway:
    return await start_gateway(settings_env)


async def reconcile(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "reconcile", "--dev", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return await asyncio.to_thread(run)


async def place(stub: pb_grpc.ChatGatewayAsyncStub, order_id: str) -> None:
    await stub.EnsureOrderChannel(
        pb.EnsureOrderChannelRequest(
            order_id=order_id,
            buyer=pb.Participant(user_id="buyer-1"),
            seller=pb.Participant(user_id=f"seller-{order_id}"),
        ),
        metadata=ORDER,
        timeout=5,
    )


@pytest.fixture
async def drifted(gateway: Gateway, stream_double: StreamDouble) -> None:
    """Five orders in the registry and in Stream, then one drift of each kind in Stream,
    and a revocation Stream never received."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        for order_id in ("r-ok", "r-gone", "r-members", "r-frozen", "r-agent"):
            await place(stub, order_id)
        await stub.CloseOrderChannel(
            pb.CloseOrderChannelRequest(order_id="r-frozen"), metadata=ORDER, timeout=5
        )
        await stub.OpenDispute(
            pb.OpenDisputeRequest(order_id="r-agent", agent=pb.Participant(user_id="sue-1")),
            metadata=SUPPORT,
            timeout=5,
        )
        # The gateway stops before Stream comes back: the revocation stays pending.
        await stream_double.stop()
        await stub.RevokeUserTokens(
            pb.RevokeUserTokensRequest(user_id="buyer-1"), metadata=WEB, timeout=5
        )
    await gateway.stop(grace_s=0.5)
    await stream_double.start()
    del stream_double.channels["messaging:order-r-gone"]
    members = stream_double.channels["messaging:order-r-members"]
    stream_double.users.setdefault("mallory", {"id": "mallory"})
    members.members = ["buyer-1", "mallory"]
    stream_double.channels["messaging:order-r-frozen"].frozen = False
    stream_double.channels["messaging:order-r-agent"].roles["sue-1"] = "channel_member"


@pytest.mark.usefixtures("drifted")
async def test_every_kind_of_drift_is_found(
    env: dict[str, str], stream_double: StreamDouble
) -> None:
    calls_before = len(stream_double.calls)
    result = await reconcile(env, "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    found = {d["order_id"]: d["differences"] for d in report["differing"]}
    assert found == {
        "r-gone": [
            "channel missing",
            "member buyer-1 missing (channel_member)",
            "member seller-r-gone missing (channel_member)",
            "order_id data missing",
        ],
        "r-members": [
            "member seller-r-members missing (channel_member)",
            "stranger mallory is a member",
        ],
        "r-frozen": ["should be frozen"],
        "r-agent": ["member sue-1 should be channel_moderator"],
    }
    assert [r["user_id"] for r in report["pending_revocations"]] == ["buyer-1"]
    assert report["orders_checked"] == 5 and report["orphans"] == []
    assert report["stream_calls"] == len(stream_double.calls) - calls_before  # every call counted
    made = {c.kind for c in stream_double.calls[calls_before:]}
    assert made == {"query_channels"}  # it only reads


@pytest.mark.usefixtures("drifted")
async def test_apply_repairs_everything_and_a_second_run_is_clean(
    env: dict[str, str], stream_double: StreamDouble
) -> None:
    applied = await reconcile(env, "--apply")
    assert applied.returncode == 1, applied.stderr  # it found differences
    assert "repaired: 4" in applied.stdout
    second = await reconcile(env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Stream matches the registry." in second.stdout
    assert stream_double.channels["messaging:order-r-frozen"].frozen
    assert stream_double.channels["messaging:order-r-agent"].role_of("sue-1") == "channel_moderator"
    assert sorted(stream_double.channels["messaging:order-r-members"].members) == [
        "buyer-1",
        "seller-r-members",
    ]
    assert stream_double.revoked_before("buyer-1") is not None
    assert (
        stream_double.creations["messaging:order-r-gone"] == 2
    )  # re-created, history kept elsewhere


async def test_an_orphan_is_reported_and_left_alone(
    gateway: Gateway, env: dict[str, str], stream_double: StreamDouble
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        await place(pb_grpc.ChatGatewayStub(channel), "r-known")
    stream_double.put_channel("messaging", "order-r-lost", ["x", "y"], order_id="r-lost")
    stream_double.put_channel("messaging", "lobby", ["x"])  # no order_id: not an order channel
    result = await reconcile(env, "--apply")
    assert result.returncode == 1
    assert "orphan" in result.stdout and "messaging:order-r-lost" in result.stdout
    assert "lobby" not in result.stdout
    assert stream_double.channels["messaging:order-r-lost"].members == ["x", "y"]  # untouched


async def test_paging_covers_more_than_a_page_and_waits_out_rate_limits(
    gateway: Gateway, env: dict[str, str], stream_double: StreamDouble
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        for i in range(65):
            await place(stub, f"p-{i:03d}")
    for i in range(40):
        stream_double.put_channel("messaging", f"order-lost-{i}", ["x"], order_id=f"lost-{i}")
    calls_before = len(stream_double.calls)
    stream_double.rate_limit(1.0, path="query_channels")
    result = await reconcile(env, "--json")
    report = json.loads(result.stdout)
    assert report["orders_checked"] == 65 and report["differing"] == []
    assert len(report["orphans"]) == 40
    limited = [c for c in stream_double.calls[calls_before:] if c.status == 429]
    assert len(limited) <= 1  # it waited for the reset instead of hammering
    assert report["stream_calls"] == len(stream_double.calls) - calls_before


async def test_stream_unreachable_is_exit_3(
    gateway: Gateway, env: dict[str, str], stream_double: StreamDouble
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        await place(pb_grpc.ChatGatewayStub(channel), "r-1")
    await stream_double.stop()
    result = await reconcile(env)
    assert result.returncode == 3 and "cannot ask Stream" in result.stderr
