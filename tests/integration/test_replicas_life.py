"""Two replicas on one PostgreSQL: a lifecycle change returned by replica A shows on
replica B (AuthorizeParticipant, GetOrderChannel and the bridge) within one second, even
though B had the order in memory before the change."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import grpc
import jwt
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from gateway.config import DEV_SESSION_SECRET
from tests.helpers.gateways import SettingsFactory
from tests.helpers.polling import eventually
from tests.helpers.rpc import ORDER_SERVICE as ORDER
from tests.helpers.rpc import SUPPORT_TOOL as SUPPORT
from tests.helpers.rpc import WEB_BACKEND as WEB

pytestmark = pytest.mark.postgres

WITHIN_S = 1.0


class Replica:
    def __init__(self, gateway: Gateway, channel: grpc.aio.Channel) -> None:
        self.gateway = gateway
        self.stub = pb_grpc.ChatGatewayStub(channel)

    async def authorize(self, user_id: str) -> pb.AuthorizeParticipantResponse:
        return await self.stub.AuthorizeParticipant(
            pb.AuthorizeParticipantRequest(order_id="ord-r", user_id=user_id),
            metadata=WEB,
            timeout=5,
        )

    async def bridge_state(self, user_id: str) -> tuple[int, dict[str, object]]:
        session = jwt.encode(
            {"sub": user_id, "exp": int(time.time()) + 300}, DEV_SESSION_SECRET, algorithm="HS256"
        )
        url = f"http://127.0.0.1:{self.gateway.http_port}/api/chat/stream/channel"
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                url, json={"orderId": "ord-r"}, headers={"Authorization": f"Bearer {session}"}
            ) as response,
        ):
            return response.status, await response.json()


@pytest.fixture
async def replicas(
    make_settings: SettingsFactory, stream_env: dict[str, str], pg_url: str
) -> AsyncIterator[tuple[Replica, Replica]]:
    settings = make_settings(env={**stream_env, "CHAT_GATEWAY_DATABASE_URL": pg_url})
    async with Gateway(settings) as a, Gateway(settings) as b:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{a.grpc_port}") as ca,
            grpc.aio.insecure_channel(f"127.0.0.1:{b.grpc_port}") as cb,
        ):
            yield Replica(a, ca), Replica(b, cb)


async def test_a_close_on_a_shows_on_b_within_a_second(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    await a.stub.EnsureOrderChannel(
        pb.EnsureOrderChannelRequest(
            order_id="ord-r",
            buyer=pb.Participant(user_id="buyer-1"),
            seller=pb.Participant(user_id="seller-1"),
        ),
        metadata=ORDER,
        timeout=5,
    )
    assert (
        await b.authorize("buyer-1")
    ).channel.state == pb.ORDER_CHANNEL_STATE_OPEN  # B caches it
    assert (await b.bridge_state("buyer-1"))[1]["state"] == "open"
    await a.stub.CloseOrderChannel(
        pb.CloseOrderChannelRequest(order_id="ord-r"), metadata=ORDER, timeout=5
    )

    async def closed_on_b() -> bool:
        answer = await b.authorize("buyer-1")
        status, body = await b.bridge_state("buyer-1")
        got = await b.stub.GetOrderChannel(
            pb.GetOrderChannelRequest(order_id="ord-r"), metadata=ORDER, timeout=5
        )
        return (
            answer.channel.state == pb.ORDER_CHANNEL_STATE_CLOSED
            and status == 200
            and body["state"] == "closed"
            and got.channel.state == pb.ORDER_CHANNEL_STATE_CLOSED
        )

    await eventually(closed_on_b, timeout_s=WITHIN_S, interval_s=0.02)


async def test_an_agent_added_on_a_is_allowed_on_b(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    await a.stub.EnsureOrderChannel(
        pb.EnsureOrderChannelRequest(
            order_id="ord-r",
            buyer=pb.Participant(user_id="buyer-1"),
            seller=pb.Participant(user_id="seller-1"),
        ),
        metadata=ORDER,
        timeout=5,
    )
    assert not (await b.authorize("sue-1")).allowed
    assert (await b.bridge_state("sue-1"))[0] == 403
    await a.stub.OpenDispute(
        pb.OpenDisputeRequest(order_id="ord-r", agent=pb.Participant(user_id="sue-1")),
        metadata=SUPPORT,
        timeout=5,
    )

    async def allowed_on_b() -> bool:
        answer = await b.authorize("sue-1")
        status, body = await b.bridge_state("sue-1")
        return (
            answer.allowed
            and answer.role == pb.PARTICIPANT_ROLE_SUPPORT
            and status == 200
            and body["role"] == "support"
            and body["members"] == ["buyer-1", "seller-1", "sue-1"]
        )

    await eventually(allowed_on_b, timeout_s=WITHIN_S, interval_s=0.02)
