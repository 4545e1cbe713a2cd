"""FakeGateway: an in-process ChatGateway whose answers, failures and stalls tests script."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import Message
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[object, object]


@dataclass
class FakeGateway(pb_grpc.ChatGatewayServicer):
    """Counts attempts per method; fails the first ``fail_first`` attempts with
    ``fail_code``; ``abort`` fails every call with a given status; ``stall_s`` delays answers.
    ``requests`` keeps the last request per method. The lifecycle RPCs answer as if the order
    existed (created an hour ago by ``order-service``), in the state the call leads to."""

    addr: str = ""
    fail_first: int = 0
    fail_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    abort: tuple[grpc.StatusCode, str, tuple[tuple[str, str | bytes], ...]] | None = None
    stall_s: float = 0.0
    attempts: Counter[str] = field(default_factory=Counter)
    keys: list[str] = field(default_factory=list)
    peer_identities: list[bytes] = field(default_factory=list)
    requests: dict[str, Message] = field(default_factory=dict)

    async def _enter(self, method: str, context: Context, request: Message | None = None) -> None:
        self.attempts[method] += 1
        if request is not None:
            self.requests[method] = request
        for name, value in context.invocation_metadata() or ():
            if name == "authorization" and isinstance(value, str):
                self.keys.append(value)
        identities = context.peer_identities()
        if identities:
            self.peer_identities.extend(identities)
        if self.attempts[method] <= self.fail_first:
            await context.abort(self.fail_code, f"scripted failure {self.attempts[method]}")
        if self.abort is not None:
            code, details, trailers = self.abort
            await context.abort(code, details, trailers)
        if self.stall_s:
            await asyncio.sleep(self.stall_s)

    async def IssueToken(  # noqa: N802
        self, request: pb.IssueTokenRequest, context: Context
    ) -> pb.IssueTokenResponse:
        await self._enter("IssueToken", context)
        response = pb.IssueTokenResponse(token="t", api_key="k", user_id=request.user_id)
        response.expire_time.GetCurrentTime()
        response.expire_time.seconds += 3600
        return response

    async def EnsureOrderChannel(  # noqa: N802
        self, request: pb.EnsureOrderChannelRequest, context: Context
    ) -> pb.EnsureOrderChannelResponse:
        await self._enter("EnsureOrderChannel", context)
        channel = pb.OrderChannel(
            order_id=request.order_id,
            channel_type="messaging",
            channel_id=f"order-{request.order_id}",
            cid=f"messaging:order-{request.order_id}",
            buyer_user_id=request.buyer.user_id,
            seller_user_id=request.seller.user_id,
            sync_state=pb.SYNC_STATE_PENDING,
        )
        return pb.EnsureOrderChannelResponse(channel=channel, created=True)

    async def AuthorizeParticipant(  # noqa: N802
        self, request: pb.AuthorizeParticipantRequest, context: Context
    ) -> pb.AuthorizeParticipantResponse:
        await self._enter("AuthorizeParticipant", context)
        return pb.AuthorizeParticipantResponse(allowed=False)

    async def GetOrderChannel(  # noqa: N802
        self, request: pb.GetOrderChannelRequest, context: Context
    ) -> pb.GetOrderChannelResponse:
        await self._enter("GetOrderChannel", context, request)
        response = pb.GetOrderChannelResponse()
        _channel(request.order_id, pb.ORDER_CHANNEL_STATE_OPEN, (), response.channel)
        created = response.history.add(action="created", service="order-service")
        created.time.CopyFrom(response.channel.create_time)
        return response

    async def CloseOrderChannel(  # noqa: N802
        self, request: pb.CloseOrderChannelRequest, context: Context
    ) -> pb.CloseOrderChannelResponse:
        await self._enter("CloseOrderChannel", context, request)
        response = pb.CloseOrderChannelResponse()
        _channel(request.order_id, pb.ORDER_CHANNEL_STATE_CLOSED, (), response.channel)
        return response

    async def OpenDispute(  # noqa: N802
        self, request: pb.OpenDisputeRequest, context: Context
    ) -> pb.OpenDisputeResponse:
        await self._enter("OpenDispute", context, request)
        response = pb.OpenDisputeResponse()
        agents = (request.agent.user_id,)
        _channel(request.order_id, pb.ORDER_CHANNEL_STATE_DISPUTED, agents, response.channel)
        return response

    async def RevokeUserTokens(  # noqa: N802
        self, request: pb.RevokeUserTokensRequest, context: Context
    ) -> pb.RevokeUserTokensResponse:
        await self._enter("RevokeUserTokens", context, request)
        response = pb.RevokeUserTokensResponse(
            user_id=request.user_id, sync_state=pb.SYNC_STATE_PENDING
        )
        response.revoke_time.GetCurrentTime()
        response.revoke_time.nanos = 0
        return response


def _channel(
    order_id: str,
    state: pb.OrderChannelState.ValueType,
    agents: tuple[str, ...],
    out: pb.OrderChannel,
) -> None:
    """Fill ``out`` with the fake's channel of ``order_id`` (buyer ``b``, seller ``s``,
    synced, created an hour ago, changed now unless still OPEN)."""
    out.order_id = order_id
    out.channel_type = "messaging"
    out.channel_id = f"order-{order_id}"
    out.cid = f"messaging:order-{order_id}"
    out.buyer_user_id, out.seller_user_id = "b", "s"
    out.sync_state = pb.SYNC_STATE_SYNCED
    out.state = state
    out.support_agent_user_ids.extend(agents)
    out.create_time.GetCurrentTime()
    out.create_time.seconds -= 3600
    if state == pb.ORDER_CHANNEL_STATE_OPEN:
        out.update_time.CopyFrom(out.create_time)
    else:
        out.update_time.GetCurrentTime()


async def start_fake(
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, FakeGateway]:
    """Serve a FakeGateway on a free loopback port (TLS when ``credentials`` is given)."""
    fake = FakeGateway()
    server = grpc.aio.server()
    pb_grpc.add_ChatGatewayServicer_to_server(fake, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    fake.addr = f"127.0.0.1:{port}"
    return server, fake
