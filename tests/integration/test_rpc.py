"""Every RPC and every error status against a real server on a loopback port."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from gateway.config import DEV_STREAM_API_SECRET
from tests.helpers.builders import ensure_request, participant
from tests.helpers.rpc import (
    GATEWAY_METHOD,
    ORDER_SERVICE,
    WEB_BACKEND,
    Metadata,
    bursting_channel,
    status_of,
    warmed,
)


def rows(gateway: Gateway) -> list[tuple[Any, ...]]:
    """Every registry row, read straight from the SQLite file."""
    path = gateway.settings.registry.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM orders ORDER BY order_id").fetchall()


async def test_issue_token(stub: pb_grpc.ChatGatewayAsyncStub) -> None:
    response = await stub.IssueToken(
        pb.IssueTokenRequest(user_id="buyer-42", ttl=duration_pb2.Duration(seconds=3600)),
        metadata=WEB_BACKEND,
    )
    claims = jwt.decode(response.token, DEV_STREAM_API_SECRET, algorithms=["HS256"])
    assert claims["user_id"] == "buyer-42"
    assert claims["exp"] - claims["iat"] == 3600 + 5  # iat 5 s back
    assert response.api_key == "local-dev-key" and response.user_id == "buyer-42"
    assert int(response.expire_time.ToDatetime().timestamp()) == claims["exp"]


async def test_issue_token_default_ttl_is_24h(stub: pb_grpc.ChatGatewayAsyncStub) -> None:
    response = await stub.IssueToken(pb.IssueTokenRequest(user_id="u1"), metadata=WEB_BACKEND)
    claims = jwt.decode(response.token, DEV_STREAM_API_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 86_400 + 5  # iat 5 s back


async def test_ensure_is_idempotent(stub: pb_grpc.ChatGatewayAsyncStub, gateway: Gateway) -> None:
    first = await stub.EnsureOrderChannel(ensure_request(), metadata=ORDER_SERVICE)
    second = await stub.EnsureOrderChannel(ensure_request(), metadata=ORDER_SERVICE)
    assert first.created and not second.created
    assert first.channel == second.channel
    assert first.channel.sync_state == pb.SYNC_STATE_SYNCED
    assert len(rows(gateway)) == 1


async def test_conflict_is_failed_precondition_and_changes_nothing(
    stub: pb_grpc.ChatGatewayAsyncStub, gateway: Gateway
) -> None:
    await stub.EnsureOrderChannel(ensure_request(), metadata=ORDER_SERVICE)
    before = rows(gateway)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.EnsureOrderChannel(ensure_request(seller="mallory"), metadata=ORDER_SERVICE)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ord-1" in (info.value.details() or "")
    assert rows(gateway) == before


async def test_authorize_a_participant(stub: pb_grpc.ChatGatewayAsyncStub) -> None:
    await stub.EnsureOrderChannel(ensure_request(), metadata=ORDER_SERVICE)
    seller = await stub.AuthorizeParticipant(
        pb.AuthorizeParticipantRequest(order_id="ord-1", user_id="seller-1"), metadata=WEB_BACKEND
    )
    assert seller.allowed and seller.role == pb.PARTICIPANT_ROLE_SELLER
    assert seller.channel.cid == "messaging:order-ord-1"


async def test_authorize_a_stranger(stub: pb_grpc.ChatGatewayAsyncStub) -> None:
    await stub.EnsureOrderChannel(ensure_request(), metadata=ORDER_SERVICE)
    stranger = await stub.AuthorizeParticipant(
        pb.AuthorizeParticipantRequest(order_id="ord-1", user_id="mallory"), metadata=WEB_BACKEND
    )
    assert not stranger.allowed and not stranger.HasField("channel")


async def test_authorize_on_an_unknown_order_is_not_found(
    stub: pb_grpc.ChatGatewayAsyncStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.AuthorizeParticipant(
            pb.AuthorizeParticipantRequest(order_id="ord-404", user_id="u"), metadata=WEB_BACKEND
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


INVALID_REQUESTS: list[tuple[str, Any, str]] = [
    ("IssueToken", pb.IssueTokenRequest(user_id=""), "user_id"),
    ("IssueToken", pb.IssueTokenRequest(user_id="u", ttl=duration_pb2.Duration(seconds=59)), "ttl"),
    (
        "IssueToken",
        pb.IssueTokenRequest(user_id="u", ttl=duration_pb2.Duration(seconds=86_401)),
        "ttl",
    ),
    ("EnsureOrderChannel", pb.EnsureOrderChannelRequest(order_id="o"), "buyer.user_id"),
    ("EnsureOrderChannel", ensure_request(order_id=""), "order_id"),
    ("EnsureOrderChannel", ensure_request(seller="buyer-1"), "seller.user_id"),
    (
        "EnsureOrderChannel",
        ensure_request(buyer=participant("buyer-1", image_url="javascript:alert(1)")),
        "buyer.image_url",
    ),
    (
        "EnsureOrderChannel",
        ensure_request(buyer=participant("buyer-1", "x" * 101)),
        "buyer.display_name",
    ),
    ("AuthorizeParticipant", pb.AuthorizeParticipantRequest(order_id="o", user_id=""), "user_id"),
]


@pytest.mark.parametrize(("method", "request_", "field"), INVALID_REQUESTS)
async def test_invalid_argument_names_the_field(
    channel: grpc.aio.Channel, gateway: Gateway, method: str, request_: Any, field: str
) -> None:
    stub = pb_grpc.ChatGatewayStub(channel)
    metadata = WEB_BACKEND if method == "IssueToken" else ORDER_SERVICE
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(stub, method)(request_, metadata=metadata)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(f"{field}: ")
    assert rows(gateway) == []


HOSTILE = [
    "x" * 20_000,
    "ord\x00",
    "ord\r\nX-Injected: 1",
    "оrd-1",  # Cyrillic 'о'
    "ｏrd-1",  # full-width
    "1' OR '1'='1",
    "1; DROP TABLE orders; --",
    "%00",
    "\u202eevil",
]


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_input_is_rejected_and_registry_unchanged(
    stub: pb_grpc.ChatGatewayAsyncStub, gateway: Gateway, value: str
) -> None:
    await stub.EnsureOrderChannel(ensure_request(order_id="existing"), metadata=ORDER_SERVICE)
    before = rows(gateway)
    calls: list[Awaitable[Any]] = [
        stub.EnsureOrderChannel(ensure_request(order_id=value), metadata=ORDER_SERVICE),
        stub.EnsureOrderChannel(ensure_request(buyer=value), metadata=ORDER_SERVICE),
        stub.EnsureOrderChannel(ensure_request(seller=value), metadata=ORDER_SERVICE),
        stub.AuthorizeParticipant(
            pb.AuthorizeParticipantRequest(order_id=value, user_id="u"), metadata=ORDER_SERVICE
        ),
        stub.AuthorizeParticipant(
            pb.AuthorizeParticipantRequest(order_id="existing", user_id=value),
            metadata=ORDER_SERVICE,
        ),
        stub.IssueToken(pb.IssueTokenRequest(user_id=value), metadata=WEB_BACKEND),
    ]
    codes = [await status_of(c) for c in calls]
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * len(calls)
    assert rows(gateway) == before
    still = await stub.AuthorizeParticipant(
        pb.AuthorizeParticipantRequest(order_id="existing", user_id="buyer-1"),
        metadata=ORDER_SERVICE,
    )
    assert still.allowed


@pytest.mark.parametrize(
    "name", ["x" * 101, "Ana\x00", "Ana\r\nX-Injected: 1", "\u202eevil", "Ana\u200b", " Ana"]
)
async def test_hostile_display_names_are_rejected(
    stub: pb_grpc.ChatGatewayAsyncStub, gateway: Gateway, name: str
) -> None:
    code = await status_of(
        stub.EnsureOrderChannel(
            ensure_request(buyer=participant("buyer-1", name)), metadata=ORDER_SERVICE
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert rows(gateway) == []


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "https://x.example/\x00",
        "https://ехample.com/a.png",
        "https://x.example/" + "a" * 3000,
        "https://user:pw@x.example/",
        "file:///etc/passwd",
    ],
)
async def test_hostile_image_urls_are_rejected(
    stub: pb_grpc.ChatGatewayAsyncStub, gateway: Gateway, url: str
) -> None:
    code = await status_of(
        stub.EnsureOrderChannel(
            ensure_request(buyer=participant("buyer-1", image_url=url)), metadata=ORDER_SERVICE
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert rows(gateway) == []


async def test_oversized_message_is_refused_and_server_keeps_serving(
    stub: pb_grpc.ChatGatewayAsyncStub, gateway: Gateway
) -> None:
    huge = ensure_request(buyer=participant("buyer-1", "x" * 100_000))
    code = await status_of(stub.EnsureOrderChannel(huge, metadata=ORDER_SERVICE))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rows(gateway) == []
    ok = await stub.EnsureOrderChannel(ensure_request(), metadata=ORDER_SERVICE)
    assert ok.created


async def test_200_concurrent_ensures_create_exactly_once(gateway: Gateway) -> None:
    async with bursting_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = pb_grpc.ChatGatewayStub(await warmed(channel))
        async with asyncio.timeout(60):
            responses = await asyncio.gather(
                *(
                    stub.EnsureOrderChannel(ensure_request(order_id="hot"), metadata=ORDER_SERVICE)
                    for _ in range(200)
                )
            )
    assert sum(r.created for r in responses) == 1
    # Same channel for all; sync_state may read PENDING for callers that raced the first sync.
    identities = {(r.channel.cid, r.channel.create_time.ToNanoseconds()) for r in responses}
    assert len(identities) == 1
    assert len(rows(gateway)) == 1


# -- the auth matrix --------------------------------------------------------------------

GRANTS = {
    "order-service": {"EnsureOrderChannel", "AuthorizeParticipant"},
    "web-backend": {"IssueToken", "AuthorizeParticipant"},
}
KEYS = {"order-service": ORDER_SERVICE, "web-backend": WEB_BACKEND}
REQUESTS = {
    "IssueToken": pb.IssueTokenRequest(user_id="u1"),
    "EnsureOrderChannel": ensure_request(order_id="auth-matrix"),
    "AuthorizeParticipant": pb.AuthorizeParticipantRequest(order_id="auth-matrix", user_id="u"),
}


@pytest.mark.parametrize("service", sorted(GRANTS))
@pytest.mark.parametrize("method", sorted(REQUESTS))
async def test_auth_matrix(
    stub: pb_grpc.ChatGatewayAsyncStub, gateway: Gateway, service: str, method: str
) -> None:
    await stub.EnsureOrderChannel(ensure_request(order_id="auth-matrix"), metadata=ORDER_SERVICE)
    code = await status_of(getattr(stub, method)(REQUESTS[method], metadata=KEYS[service]))
    expected = (
        grpc.StatusCode.OK if method in GRANTS[service] else grpc.StatusCode.PERMISSION_DENIED
    )
    assert code == expected


BAD_CREDENTIALS: list[Metadata] = [
    (),
    (("authorization", "Bearer garbage-key"),),
    (("authorization", "Bearer "),),
    (("authorization", "Basic ZGV2LW9yZGVyLXNlcnZpY2Uta2V5"),),
    (("authorization", "dev-order-service-key"),),
    (("authorization", "Bearer dev-order-service-key-but-longer"),),
    (("x-api-key", "dev-order-service-key"),),
]


@pytest.mark.parametrize("metadata", BAD_CREDENTIALS)
@pytest.mark.parametrize("method", sorted(REQUESTS))
async def test_missing_or_unknown_key_is_unauthenticated(
    stub: pb_grpc.ChatGatewayAsyncStub, gateway: Gateway, method: str, metadata: Metadata
) -> None:
    code = await status_of(getattr(stub, method)(REQUESTS[method], metadata=metadata))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert rows(gateway) == []


async def test_every_call_is_checked_after_the_method_was_first_allowed(
    stub: pb_grpc.ChatGatewayAsyncStub,
) -> None:
    # The guard keeps a method's handler after its first call: the key check must stay in
    # the call, not in that first lookup.
    request = pb.IssueTokenRequest(user_id="u1")
    assert await status_of(stub.IssueToken(request, metadata=WEB_BACKEND)) == grpc.StatusCode.OK
    for metadata in BAD_CREDENTIALS:
        code = await status_of(stub.IssueToken(request, metadata=metadata))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    code = await status_of(stub.IssueToken(request, metadata=ORDER_SERVICE))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert await status_of(stub.IssueToken(request, metadata=WEB_BACKEND)) == grpc.StatusCode.OK


@pytest.mark.parametrize("service", ["", "tradetrust.chat.v1.ChatGateway"])
async def test_health_needs_no_key(channel: grpc.aio.Channel, service: str) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    response = await health.Check(health_pb2.HealthCheckRequest(service=service))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_needs_no_key(channel: grpc.aio.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one_request() -> Any:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names: set[str] = set()
    async for reply in reflection.ServerReflectionInfo(one_request()):
        names |= {s.name for s in reply.list_services_response.service}
    assert "tradetrust.chat.v1.ChatGateway" in names


async def test_unknown_method_is_unimplemented(channel: grpc.aio.Channel) -> None:
    method: Any = channel.unary_unary(GATEWAY_METHOD + "DeleteEverything")
    call = method(b"", metadata=ORDER_SERVICE)
    assert await status_of(call) == grpc.StatusCode.UNIMPLEMENTED
