"""The ChatGateway servicer: proto in, service layer, proto out. Errors propagate as
domain errors; :mod:`gateway.rpc.errors` maps them to status codes."""

from __future__ import annotations

import grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.memo import ResponseMemo
from gateway.rpc import convert
from gateway.service import ChatService


class ChatGatewayServicer(pb_grpc.ChatGatewayServicer):
    """Implements ``tradetrust.chat.v1.ChatGateway`` on :class:`ChatService`."""

    def __init__(self, service: ChatService) -> None:
        self._service = service
        self._tokens: ResponseMemo[pb.IssueTokenResponse] = ResponseMemo()
        self._ensured: ResponseMemo[pb.EnsureOrderChannelResponse] = ResponseMemo()
        self._authorized: ResponseMemo[pb.AuthorizeParticipantResponse] = ResponseMemo()

    async def IssueToken(  # noqa: N802 - gRPC method name
        self, request: pb.IssueTokenRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.IssueTokenResponse:
        token = self._service.issue_token(request.user_id, convert.ttl_from_proto(request))
        return self._tokens.get(token.token, token, lambda: convert.token_to_proto(token))

    async def EnsureOrderChannel(  # noqa: N802
        self,
        request: pb.EnsureOrderChannelRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.EnsureOrderChannelResponse:
        channel, created = await self._service.ensure_order_channel(
            request.order_id,
            convert.participant_from_proto(request.buyer),
            convert.participant_from_proto(request.seller),
            time_remaining_s=context.time_remaining(),
        )
        return self._ensured.get(
            (channel.order_id, created),
            channel,
            lambda: convert.ensure_to_proto(channel, created),
        )

    async def AuthorizeParticipant(  # noqa: N802
        self,
        request: pb.AuthorizeParticipantRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.AuthorizeParticipantResponse:
        answer = await self._service.authorize_participant(request.order_id, request.user_id)
        if not answer.allowed or answer.channel is None:
            return convert.authorization_to_proto(answer)
        return self._authorized.get(
            (answer.channel.order_id, answer.role),
            answer.channel,
            lambda: convert.authorization_to_proto(answer),
        )
