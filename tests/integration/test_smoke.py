"""The smallest end-to-end check: a real server on loopback answers each RPC."""

from __future__ import annotations

from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from tests.helpers.builders import ensure_request
from tests.helpers.rpc import ORDER_SERVICE


async def test_ensure_then_authorize(stub: pb_grpc.ChatGatewayAsyncStub) -> None:
    created = await stub.EnsureOrderChannel(ensure_request("o-1", "b", "s"), metadata=ORDER_SERVICE)
    assert created.created
    assert created.channel.sync_state == pb.SYNC_STATE_SYNCED
    answer = await stub.AuthorizeParticipant(
        pb.AuthorizeParticipantRequest(order_id="o-1", user_id="s"), metadata=ORDER_SERVICE
    )
    assert answer.allowed and answer.role == pb.PARTICIPANT_ROLE_SELLER
