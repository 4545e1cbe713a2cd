"""The ChatGateway servicer: proto in, service layer, proto out. Errors propagate as
domain errors; :mod:`gateway.rpc.errors` maps them to status codes."""

from __future__ import annotations

import grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway import logs
from gateway.rpc import convert
from gateway.service import ChatService

Context = grpc.aio.ServicerContext[object, object]


def _caller() -> str:
    """The calling service's name, as the service-key interceptor authenticated it."""
    scope = logs.current_request.get()
    return scope.service if scope is not None else ""


class ChatGatewayServicer(pb_grpc.ChatGatewayServicer):
    """Implements ``tradetrust.chat.v1.ChatGateway`` on :class:`ChatService`."""

    def __init__(self, service: ChatService) -> None:
        self._service = service

    async def IssueToken(  # noqa: N802 - gRPC method name
        self, request: pb.IssueTokenRequest, context: Context
    ) -> pb.IssueTokenResponse:
        token = self._service.issue_token(request.user_id, convert.ttl_from_proto(request))
        return convert.token_to_proto(token)

    async def EnsureOrderChannel(  # noqa: N802
        self, request: pb.EnsureOrderChannelRequest, context: Context
    ) -> pb.EnsureOrderChannelResponse:
        channel, created = await self._service.ensure_order_channel(
            request.order_id,
            convert.participant_from_proto(request.buyer),
            convert.participant_from_proto(request.seller),
            service=_caller(),
            time_remaining_s=context.time_remaining(),
        )
        return convert.ensure_to_proto(channel, created)

    async def AuthorizeParticipant(  # noqa: N802
        self, request: pb.AuthorizeParticipantRequest, context: Context
    ) -> pb.AuthorizeParticipantResponse:
        answer = await self._service.authorize_participant(request.order_id, request.user_id)
        return convert.authorization_to_proto(answer)

    async def GetOrderChannel(  # noqa: N802
        self, request: pb.GetOrderChannelRequest, context: Context
    ) -> pb.GetOrderChannelResponse:
        channel, history = await self._service.get_order_channel(request.order_id)
        return convert.get_to_proto(channel, history)

    async def CloseOrderChannel(  # noqa: N802
        self, request: pb.CloseOrderChannelRequest, context: Context
    ) -> pb.CloseOrderChannelResponse:
        channel = await self._service.close_order_channel(
            request.order_id,
            request.reason,
            service=_caller(),
            time_remaining_s=context.time_remaining(),
        )
        response = pb.CloseOrderChannelResponse()
        convert.channel_to_proto(channel, response.channel)
        return response

    async def OpenDispute(  # noqa: N802
        self, request: pb.OpenDisputeRequest, context: Context
    ) -> pb.OpenDisputeResponse:
        channel = await self._service.open_dispute(
            request.order_id,
            convert.participant_from_proto(request.agent),
            request.reason,
            service=_caller(),
            time_remaining_s=context.time_remaining(),
        )
        response = pb.OpenDisputeResponse()
        convert.channel_to_proto(channel, response.channel)
        return response

    async def RevokeUserTokens(  # noqa: N802
        self, request: pb.RevokeUserTokensRequest, context: Context
    ) -> pb.RevokeUserTokensResponse:
        revocation = await self._service.revoke_user_tokens(
            request.user_id, time_remaining_s=context.time_remaining()
        )
        return convert.revocation_to_proto(revocation)
