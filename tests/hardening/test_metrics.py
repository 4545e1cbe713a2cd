"""/metrics after a known scenario: scraped over HTTP and parsed with prometheus_client."""

from __future__ import annotations

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from tests.helpers.bridge import TOKEN_PATH, bearer, session_jwt
from tests.helpers.builders import numbered_request
from tests.helpers.gateways import GatewayFactory, SettingsFactory
from tests.helpers.rpc import GATEWAY_METHOD as M
from tests.helpers.rpc import ORDER_SERVICE, WEB_BACKEND, status_of
from tests.stream_double import StreamDouble

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def gw(start_gateway: GatewayFactory, stream_env: dict[str, str]) -> Gateway:
    return await start_gateway(stream_env)


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


@pytest.fixture
async def samples(gw: Gateway, stream_double: StreamDouble) -> Samples:
    """/metrics after a scenario: 3 tokens issued, 1 invalid and 1 unauthenticated
    IssueToken, an order ensured twice, 1 AuthorizeParticipant NOT_FOUND; over HTTP 2
    tokens, 1 request without a session and 1 to an unknown route; then Stream goes down
    and a third EnsureOrderChannel leaves an order pending."""
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch,
        aiohttp.ClientSession() as http,
    ):
        stub = pb_grpc.ChatGatewayStub(ch)
        for n in range(3):
            await stub.IssueToken(pb.IssueTokenRequest(user_id=f"u-{n}"), metadata=WEB_BACKEND)
        invalid = stub.IssueToken(pb.IssueTokenRequest(user_id=""), metadata=WEB_BACKEND)
        assert await status_of(invalid) is grpc.StatusCode.INVALID_ARGUMENT
        no_key = stub.IssueToken(pb.IssueTokenRequest(user_id="u-1"))
        assert await status_of(no_key) is grpc.StatusCode.UNAUTHENTICATED
        first = await stub.EnsureOrderChannel(numbered_request(1), metadata=ORDER_SERVICE)
        again = await stub.EnsureOrderChannel(numbered_request(1), metadata=ORDER_SERVICE)
        assert first.created and not again.created
        assert first.channel.sync_state == pb.SYNC_STATE_SYNCED
        unknown = stub.AuthorizeParticipant(
            pb.AuthorizeParticipantRequest(order_id="nope", user_id="buyer-1"),
            metadata=ORDER_SERVICE,
        )
        assert await status_of(unknown) is grpc.StatusCode.NOT_FOUND
        base = f"http://127.0.0.1:{gw.http_port}"
        for _ in range(2):
            async with http.get(base + TOKEN_PATH, headers=bearer(session_jwt("buyer-1"))) as r:
                assert r.status == 200
        async with http.get(base + TOKEN_PATH) as r:
            assert r.status == 401
        async with http.get(f"{base}/no/such/thing") as r:
            assert r.status == 404

        # An order Stream cannot take yet: the backlog gauge counts it.
        await stream_double.stop()
        pending = await stub.EnsureOrderChannel(numbered_request(2), metadata=ORDER_SERVICE)
        assert pending.channel.sync_state == pb.SYNC_STATE_PENDING
        await gw.refresh_metrics()
        return await scrape(http, gw.http_port)


def test_rpcs_are_counted_by_method_and_code(samples: Samples) -> None:
    rpcs = "chat_gateway_rpcs_total"
    assert value(samples, rpcs, method=M + "IssueToken", code="OK") == 3
    assert value(samples, rpcs, method=M + "IssueToken", code="INVALID_ARGUMENT") == 1
    assert value(samples, rpcs, method=M + "IssueToken", code="UNAUTHENTICATED") == 1
    assert value(samples, rpcs, method=M + "EnsureOrderChannel", code="OK") == 3
    assert value(samples, rpcs, method=M + "AuthorizeParticipant", code="NOT_FOUND") == 1


def test_rpc_durations_are_observed_per_method(samples: Samples) -> None:
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


def test_http_requests_are_counted_by_route_and_status(samples: Samples) -> None:
    requests = "chat_gateway_http_requests_total"
    assert value(samples, requests, method="GET", route=TOKEN_PATH, status="200") == 2
    assert value(samples, requests, method="GET", route=TOKEN_PATH, status="401") == 1
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1


def test_http_request_durations_are_observed_per_route(samples: Samples) -> None:
    durations = "chat_gateway_http_request_duration_seconds_count"
    assert value(samples, durations, route=TOKEN_PATH) == 3


def test_stream_calls_are_counted_by_call_and_outcome(samples: Samples) -> None:
    calls = "chat_gateway_stream_calls_total"
    # One synced order: upsert_users and get_or_create_channel answered OK once each.
    assert value(samples, calls, call="upsert_users", outcome="ok") == 1
    assert value(samples, calls, call="get_or_create_channel", outcome="ok") == 1
    assert value(samples, calls, call="upsert_users", outcome="transient") >= 1


def test_stream_call_durations_are_observed_per_call(samples: Samples) -> None:
    calls = "chat_gateway_stream_calls_total"
    for call in ("upsert_users", "get_or_create_channel"):
        counted = sum(
            v for (name, labels), v in samples.items() if name == calls and ("call", call) in labels
        )
        durations = "chat_gateway_stream_call_duration_seconds"
        assert value(samples, f"{durations}_count", call=call) == counted > 0
        assert value(samples, f"{durations}_bucket", call=call, le="+Inf") == counted
        assert value(samples, f"{durations}_sum", call=call) > 0


def test_stream_rate_limit_remaining_is_published(samples: Samples) -> None:
    assert value(samples, "chat_gateway_stream_rate_limit_remaining") == 999


def test_sync_backlog_is_published(samples: Samples) -> None:
    assert value(samples, "chat_gateway_sync_backlog_orders") == 1
    assert value(samples, "chat_gateway_sync_oldest_pending_age_seconds") >= 0


def test_no_rpc_is_in_flight_after_the_scenario(samples: Samples) -> None:
    assert value(samples, "chat_gateway_rpcs_in_flight") == 0


async def test_each_gateway_has_its_own_registry(
    make_settings: SettingsFactory, gw: Gateway
) -> None:
    other = Gateway(make_settings(database_url="sqlite:///:memory:"))
    gw.metrics.observe_rpc(M + "IssueToken", "OK", 0.001)
    assert b"IssueToken" not in other.metrics.render()
