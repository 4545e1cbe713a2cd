"""The ChatGateway servicer: proto in, service layer, proto out. Errors propagate as
domain errors; :mod:`gateway.rpc.errors` maps them to status codes."""

from __future__ import annotations

import grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.rpc import convert
from gateway.service import ChatService

_MAX_TOKEN_RESPONSES = 1024


class ChatGatewayServicer(pb_grpc.ChatGatewayServicer):
    """Implements ``tradetrust.chat.v1.ChatGateway`` on :class:`ChatService`."""

    def __init__(self, service: ChatService) -> None:
        self._service = service
        # The signer hands out the same IssuedToken for the same user and lifetime within a
        # second; its response message is built once too (gRPC only serializes it).
        self._token_responses: dict[str, pb.IssueTokenResponse] = {}

    async def IssueToken(  # noqa: N802 - gRPC method name
        self, request: pb.IssueTokenRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.IssueTokenResponse:
        token = await self._service.issue_token(request.user_id, convert.ttl_from_proto(request))
        responses = self._token_responses
        response = responses.get(token.token)
        if response is None:
            if len(responses) >= _MAX_TOKEN_RESPONSES:
                responses.clear()
            response = responses[token.token] = convert.token_to_proto(token)
        return response

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
        return convert.ensure_to_proto(channel, created)

    async def AuthorizeParticipant(  # noqa: N802
        self,
        request: pb.AuthorizeParticipantRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.AuthorizeParticipantResponse:
        answer = await self._service.authorize_participant(request.order_id, request.user_id)
        return convert.authorization_to_proto(answer)
