"""/metrics after a known scenario: scraped over HTTP and parsed with prometheus_client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from tests.bridge.conftest import session_jwt
from tests.conftest import ORDER_SERVICE, WEB_BACKEND, SettingsFactory
from tests.hardening.test_drain import ensure_request
from tests.stream_double import StreamDouble

M = "/tradetrust.chat.v1.ChatGateway/"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def gw(make_settings: SettingsFactory, stream_env: dict[str, str]) -> AsyncIterator[Gateway]:
    gateway = Gateway(make_settings(env=stream_env))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop(grace_s=1.0)


async def scrape(http: aiohttp.ClientSession, port: int) -> Samples:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def expect_code(call: object, code: grpc.StatusCode) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() is code


async def test_metrics_count_the_scenario(gw: Gateway, stream_double: StreamDouble) -> None:
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch,
        aiohttp.ClientSession() as http,
    ):
        stub = pb_grpc.ChatGatewayStub(ch)
        for n in range(3):
            await stub.IssueToken(pb.IssueTokenRequest(user_id=f"u-{n}"), metadata=WEB_BACKEND)
        await expect_code(
            stub.IssueToken(pb.IssueTokenRequest(user_id=""), metadata=WEB_BACKEND),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        await expect_code(
            stub.IssueToken(pb.IssueTokenRequest(user_id="u-1")),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        first = await stub.EnsureOrderChannel(ensure_request(1), metadata=ORDER_SERVICE)
        again = await stub.EnsureOrderChannel(ensure_request(1), metadata=ORDER_SERVICE)
        assert first.created and not again.created
        assert first.channel.sync_state == pb.SYNC_STATE_SYNCED
        await expect_code(
            stub.AuthorizeParticipant(
                pb.AuthorizeParticipantRequest(order_id="nope", user_id="buyer-1"),
                metadata=ORDER_SERVICE,
            ),
            grpc.StatusCode.NOT_FOUND,
        )
        bearer = {"Authorization": f"Bearer {session_jwt('buyer-1')}"}
        for _ in range(2):
            async with http.get(
                f"http://127.0.0.1:{gw.http_port}/api/chat/stream/token", headers=bearer
            ) as r:
                assert r.status == 200
        async with http.get(f"http://127.0.0.1:{gw.http_port}/api/chat/stream/token") as r:
            assert r.status == 401
        async with http.get(f"http://127.0.0.1:{gw.http_port}/no/such/thing") as r:
            assert r.status == 404

        # An order Stream cannot take yet: the backlog gauge counts it.
        await stream_double.stop()
        pending = await stub.EnsureOrderChannel(ensure_request(2), metadata=ORDER_SERVICE)
        assert pending.channel.sync_state == pb.SYNC_STATE_PENDING
        await gw.refresh_metrics()
        samples = await scrape(http, gw.http_port)

    assert value(samples, "chat_gateway_rpcs_total", method=M + "IssueToken", code="OK") == 3
    assert (
        value(samples, "chat_gateway_rpcs_total", method=M + "IssueToken", code="INVALID_ARGUMENT")
        == 1
    )
    assert (
        value(samples, "chat_gateway_rpcs_total", method=M + "IssueToken", code="UNAUTHENTICATED")
        == 1
    )
    assert (
        value(samples, "chat_gateway_rpcs_total", method=M + "EnsureOrderChannel", code="OK") == 3
    )
    assert (
        value(
            samples, "chat_gateway_rpcs_total", method=M + "AuthorizeParticipant", code="NOT_FOUND"
        )
        == 1
    )
    assert value(samples, "chat_gateway_rpc_duration_seconds_count", method=M + "IssueToken") == 5
    assert (
        value(
            samples,
            "chat_gateway_rpc_duration_seconds_bucket",
            method=M + "IssueToken",
            le="+Inf",
        )
        == 5
    )
    token_route = "/api/chat/stream/token"
    assert (
        value(
            samples,
            "chat_gateway_http_requests_total",
            method="GET",
            route=token_route,
            status="200",
        )
        == 2
    )
    assert (
        value(
            samples,
            "chat_gateway_http_requests_total",
            method="GET",
            route=token_route,
            status="401",
        )
        == 1
    )
    assert (
        value(
            samples,
            "chat_gateway_http_requests_total",
            method="GET",
            route="unmatched",
            status="404",
        )
        == 1
    )
    assert (
        value(samples, "chat_gateway_http_request_duration_seconds_count", route=token_route) == 3
    )
    # One synced order: upsert_users and get_or_create_channel answered OK once each.
    assert value(samples, "chat_gateway_stream_calls_total", call="upsert_users", outcome="ok") == 1
    assert (
        value(
            samples, "chat_gateway_stream_calls_total", call="get_or_create_channel", outcome="ok"
        )
        == 1
    )
    assert (
        value(samples, "chat_gateway_stream_calls_total", call="upsert_users", outcome="transient")
        >= 1
    )
    assert value(samples, "chat_gateway_stream_rate_limit_remaining") == 999
    assert value(samples, "chat_gateway_sync_backlog_orders") == 1
    assert value(samples, "chat_gateway_sync_oldest_pending_age_seconds") >= 0
    assert value(samples, "chat_gateway_rpcs_in_flight") == 0


async def test_each_gateway_has_its_own_registry(
    make_settings: SettingsFactory, gw: Gateway
) -> None:
    other = Gateway(make_settings(database_url="sqlite:///:memory:"))
    gw.metrics.observe_rpc(M + "IssueToken", "OK", 0.001)
    assert b"IssueToken" not in other.metrics.render()
