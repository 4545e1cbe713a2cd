"""The order chat's life over gRPC on a real dev-profile gateway: every transition and its
idempotent repeat with the history asserted, the refusals, and each service's grants."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import grpc
import jwt
import pytest
from google.protobuf import duration_pb2
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.config import DEV_STREAM_API_SECRET
from tests.helpers.rpc import ORDER_SERVICE as ORDER
from tests.helpers.rpc import SUPPORT_TOOL as SUPPORT
from tests.helpers.rpc import WEB_BACKEND as WEB
from tests.helpers.rpc import status_of as code_of

if TYPE_CHECKING:
    Stub = pb_grpc.ChatGatewayAsyncStub
OPEN, CLOSED, DISPUTED = (
    pb.ORDER_CHANNEL_STATE_OPEN,
    pb.ORDER_CHANNEL_STATE_CLOSED,
    pb.ORDER_CHANNEL_STATE_DISPUTED,
)


async def place(stub: Stub, order_id: str = "ord-life") -> pb.OrderChannel:
    response = await stub.EnsureOrderChannel(
        pb.EnsureOrderChannelRequest(
            order_id=order_id,
            buyer=pb.Participant(user_id="buyer-1"),
            seller=pb.Participant(user_id="seller-1"),
        ),
        metadata=ORDER,
    )
    return response.channel


async def dispute(
    stub: Stub, agent: str = "sue-1", reason: str = "", order_id: str = "ord-life"
) -> pb.OrderChannel:
    response = await stub.OpenDispute(
        pb.OpenDisputeRequest(
            order_id=order_id,
            agent=pb.Participant(user_id=agent, display_name="Agent"),
            reason=reason,
        ),
        metadata=SUPPORT,
    )
    return response.channel


async def close(stub: Stub, reason: str = "", order_id: str = "ord-life") -> pb.OrderChannel:
    response = await stub.CloseOrderChannel(
        pb.CloseOrderChannelRequest(order_id=order_id, reason=reason), metadata=ORDER
    )
    return response.channel


async def history(stub: Stub, order_id: str = "ord-life") -> list[tuple[str, str, str, str]]:
    response = await stub.GetOrderChannel(
        pb.GetOrderChannelRequest(order_id=order_id), metadata=ORDER
    )
    return [(e.action, e.service, e.reason, e.agent_user_id) for e in response.history]


async def test_a_new_order_is_open_with_its_creation_in_the_history(stub: Stub) -> None:
    channel = await place(stub)
    assert channel.state == OPEN and list(channel.support_agent_user_ids) == []
    assert channel.update_time == channel.create_time
    assert await history(stub) == [("created", "order-service", "", "")]


async def test_close_freezes_once(stub: Stub) -> None:
    await place(stub)
    closed = await close(stub, reason="delivered")
    assert closed.state == CLOSED and closed.sync_state == pb.SYNC_STATE_SYNCED
    assert closed.update_time.ToDatetime() >= closed.create_time.ToDatetime()
    again = await close(stub, reason="delivered twice")
    assert again.state == CLOSED and again.update_time == closed.update_time
    assert await history(stub) == [
        ("created", "order-service", "", ""),
        ("closed", "order-service", "delivered", ""),
    ]


async def test_dispute_brings_agents_in_and_repeats_change_nothing(stub: Stub) -> None:
    await place(stub)
    first = await dispute(stub, "sue-1", reason="not as described")
    assert first.state == DISPUTED and list(first.support_agent_user_ids) == ["sue-1"]
    assert (await dispute(stub, "sue-1")).update_time == first.update_time  # same agent: no-op
    second = await dispute(stub, "tom-2", reason="escalated")
    assert list(second.support_agent_user_ids) == ["sue-1", "tom-2"]
    assert await history(stub) == [
        ("created", "order-service", "", ""),
        ("dispute_opened", "support-tool", "not as described", "sue-1"),
        ("agent_added", "support-tool", "escalated", "tom-2"),
    ]


async def test_a_closed_order_can_be_disputed_and_closed_again(stub: Stub) -> None:
    await place(stub)
    await close(stub)
    reopened = await dispute(stub, "sue-1")
    assert reopened.state == DISPUTED
    closed = await close(stub, reason="resolved")
    assert closed.state == CLOSED and list(closed.support_agent_user_ids) == ["sue-1"]
    assert [action for action, *_ in await history(stub)] == [
        "created",
        "closed",
        "dispute_opened",
        "closed",
    ]


async def test_support_agents_are_authorized_with_their_role(stub: Stub) -> None:
    await place(stub)
    await dispute(stub, "sue-1")
    await close(stub)
    for user, role in (
        ("sue-1", pb.PARTICIPANT_ROLE_SUPPORT),
        ("buyer-1", pb.PARTICIPANT_ROLE_BUYER),  # a closed chat stays readable
    ):
        answer = await stub.AuthorizeParticipant(
            pb.AuthorizeParticipantRequest(order_id="ord-life", user_id=user), metadata=WEB
        )
        assert answer.allowed and answer.role == role and answer.channel.state == CLOSED
    stranger = await stub.AuthorizeParticipant(
        pb.AuthorizeParticipantRequest(order_id="ord-life", user_id="tom-2"), metadata=WEB
    )
    assert not stranger.allowed


@pytest.mark.parametrize("method", ["GetOrderChannel", "CloseOrderChannel", "OpenDispute"])
async def test_unknown_order_is_not_found(stub: Stub, method: str) -> None:
    requests = {
        "GetOrderChannel": pb.GetOrderChannelRequest(order_id="ord-none"),
        "CloseOrderChannel": pb.CloseOrderChannelRequest(order_id="ord-none"),
        "OpenDispute": pb.OpenDisputeRequest(
            order_id="ord-none", agent=pb.Participant(user_id="sue-1")
        ),
    }
    assert await code_of(getattr(stub, method)(requests[method], metadata=SUPPORT)) == (
        grpc.StatusCode.NOT_FOUND
    )


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (
            pb.OpenDisputeRequest(order_id="ord-life", agent=pb.Participant(user_id="buyer-1")),
            "agent.user_id",
        ),
        (
            pb.OpenDisputeRequest(order_id="ord-life", agent=pb.Participant(user_id="seller-1")),
            "agent.user_id",
        ),
        (pb.OpenDisputeRequest(order_id="ord-life"), "agent.user_id"),
        (
            pb.OpenDisputeRequest(order_id="ord-life", agent=pb.Participant(user_id="a b")),
            "agent.user_id",
        ),
        (
            pb.OpenDisputeRequest(
                order_id="ord-life", agent=pb.Participant(user_id="sue-1"), reason="x" * 501
            ),
            "reason",
        ),
        (pb.CloseOrderChannelRequest(order_id="ord-life", reason="x" * 501), "reason"),
        (pb.CloseOrderChannelRequest(order_id="ord-life", reason="a\x1b[31mred"), "reason"),
        (pb.CloseOrderChannelRequest(order_id="ord life"), "order_id"),
        (pb.GetOrderChannelRequest(order_id=""), "order_id"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    stub: Stub, request_: Any, field: str
) -> None:
    await place(stub)
    method: Any = getattr(stub, type(request_).__name__.removesuffix("Request"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await method(request_, metadata=SUPPORT)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"{field}: ")
    assert await history(stub) == [("created", "order-service", "", "")]


GRANTS = {
    "order-service": (
        ORDER,
        {"EnsureOrderChannel", "AuthorizeParticipant", "GetOrderChannel", "CloseOrderChannel"},
    ),
    "web-backend": (WEB, {"IssueToken", "AuthorizeParticipant", "RevokeUserTokens"}),
    "support-tool": (
        SUPPORT,
        {
            "GetOrderChannel",
            "OpenDispute",
            "CloseOrderChannel",
            "AuthorizeParticipant",
            "RevokeUserTokens",
        },
    ),
}
CALLS: dict[str, Any] = {
    "IssueToken": pb.IssueTokenRequest(user_id="buyer-1"),
    "EnsureOrderChannel": pb.EnsureOrderChannelRequest(
        order_id="ord-grants",
        buyer=pb.Participant(user_id="buyer-1"),
        seller=pb.Participant(user_id="seller-1"),
    ),
    "AuthorizeParticipant": pb.AuthorizeParticipantRequest(
        order_id="ord-grants", user_id="buyer-1"
    ),
    "GetOrderChannel": pb.GetOrderChannelRequest(order_id="ord-grants"),
    "CloseOrderChannel": pb.CloseOrderChannelRequest(order_id="ord-grants"),
    "OpenDispute": pb.OpenDisputeRequest(
        order_id="ord-grants", agent=pb.Participant(user_id="sue-1")
    ),
    "RevokeUserTokens": pb.RevokeUserTokensRequest(user_id="buyer-1"),
}


@pytest.mark.parametrize("service", list(GRANTS))
@pytest.mark.parametrize("method", list(CALLS))
async def test_each_service_calls_exactly_its_grants(stub: Stub, service: str, method: str) -> None:
    await place(stub, "ord-grants")
    metadata, granted = GRANTS[service]
    code = await code_of(getattr(stub, method)(CALLS[method], metadata=metadata))
    if method in granted:
        assert code is grpc.StatusCode.OK
    else:
        assert code is grpc.StatusCode.PERMISSION_DENIED


async def test_revocation_returns_in_the_next_second_with_the_rule_s_time(stub: Stub) -> None:
    before = time.time()
    answer = await stub.RevokeUserTokens(
        pb.RevokeUserTokensRequest(user_id="buyer-1"), metadata=WEB
    )
    returned = time.time()
    revoke_s = answer.revoke_time.seconds
    assert revoke_s == int(before) + 1 - 5 or revoke_s == int(returned) - 5  # floor(t) + 1 - skew
    assert returned >= revoke_s + 5 + 0.25  # returned inside the next second, past the margin
    assert answer.user_id == "buyer-1" and answer.sync_state == pb.SYNC_STATE_SYNCED
    token = await stub.IssueToken(pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB)
    claims = jwt.decode(token.token, DEV_STREAM_API_SECRET, algorithms=["HS256"])
    assert claims["iat"] >= revoke_s  # a token issued after the call is not revoked


async def test_tokens_carry_iat_the_skew_in_the_past(stub: Stub) -> None:
    before = int(time.time())
    token = await stub.IssueToken(
        pb.IssueTokenRequest(user_id="buyer-1", ttl=duration_pb2.Duration(seconds=600)),
        metadata=WEB,
    )
    after = int(time.time())
    claims = jwt.decode(token.token, DEV_STREAM_API_SECRET, algorithms=["HS256"])
    assert before - 5 <= claims["iat"] <= after - 5
    assert claims["exp"] - claims["iat"] == 600 + 5  # exp counts from the signing second
