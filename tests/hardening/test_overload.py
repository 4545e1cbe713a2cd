"""Overload: past CHAT_GATEWAY_MAX_CONCURRENT_RPCS, RPCs get RESOURCE_EXHAUSTED at once;
health stays answerable, and capacity is back the moment the slow calls finish.

The slots are held honestly by slow EnsureOrderChannel calls (the Stream double delays its
answers, so each call spends ~1 s in its inline sync).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from tests.helpers.builders import numbered_request
from tests.helpers.gateways import GatewayFactory
from tests.helpers.polling import eventually
from tests.helpers.rpc import ORDER_SERVICE, WEB_BACKEND
from tests.stream_double import StreamDouble

CAP = 5


@pytest.fixture
async def capped(start_gateway: GatewayFactory, stream_env: dict[str, str]) -> Gateway:
    env = {
        **stream_env,
        "CHAT_GATEWAY_STREAM_TIMEOUT": "5",
        "CHAT_GATEWAY_INLINE_SYNC_BUDGET": "1.0",
        "CHAT_GATEWAY_MAX_CONCURRENT_RPCS": str(CAP),
    }
    return await start_gateway(env, stop_grace_s=2.0)


@dataclass
class Saturated:
    """A capped gateway with every slot held by a slow call."""

    stub: pb_grpc.ChatGatewayAsyncStub
    health: health_pb2_grpc.HealthStub
    slow: Sequence[asyncio.Future[pb.EnsureOrderChannelResponse]]


@asynccontextmanager
async def saturated(capped: Gateway, stream_double: StreamDouble) -> AsyncIterator[Saturated]:
    """Hold all ``CAP`` slots with slow EnsureOrderChannel calls (each ~1 s in Stream); on
    exit, wait for them to finish."""
    stream_double.delay_s = 0.5
    async with grpc.aio.insecure_channel(f"127.0.0.1:{capped.grpc_port}") as ch:
        stub = pb_grpc.ChatGatewayStub(ch)
        slow = [
            asyncio.ensure_future(
                stub.EnsureOrderChannel(numbered_request(n), metadata=ORDER_SERVICE, timeout=10)
            )
            for n in range(CAP)
        ]
        try:
            await eventually(lambda: capped.admission.rpcs == CAP, timeout_s=5, interval_s=0.01)
            yield Saturated(stub, health_pb2_grpc.HealthStub(ch), slow)
        finally:
            await asyncio.gather(*slow, return_exceptions=True)


async def issue_token(stub: pb_grpc.ChatGatewayAsyncStub) -> pb.IssueTokenResponse:
    response: pb.IssueTokenResponse = await stub.IssueToken(
        pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB_BACKEND, timeout=2
    )
    return response


async def test_beyond_the_cap_every_call_is_resource_exhausted(
    capped: Gateway, stream_double: StreamDouble
) -> None:
    async with saturated(capped, stream_double) as busy:
        for _ in range(20):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await issue_token(busy.stub)
            assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not any(c.done() for c in busy.slow)


async def test_the_refusal_gives_the_overloaded_reason(
    capped: Gateway, stream_double: StreamDouble
) -> None:
    async with saturated(capped, stream_double) as busy:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await issue_token(busy.stub)
    status = rpc_status.from_call(caught.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert info.reason == "OVERLOADED"


async def test_probes_are_exempt_from_the_cap(capped: Gateway, stream_double: StreamDouble) -> None:
    async with saturated(capped, stream_double) as busy:
        reply = await busy.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert not any(c.done() for c in busy.slow)


async def test_capacity_is_back_the_moment_the_slow_calls_finish(
    capped: Gateway, stream_double: StreamDouble
) -> None:
    async with saturated(capped, stream_double) as busy:
        await asyncio.gather(*busy.slow)
        freed = time.monotonic()
        token = await issue_token(busy.stub)
        recovered_ms = (time.monotonic() - freed) * 1000
    assert token.token
    assert capped.admission.rpcs == 0
    assert recovered_ms < 500
    print(f"overload: first call after recovery in {recovered_ms:.1f} ms")  # noqa: T201


async def test_the_cap_counts_only_calls_in_flight(capped: Gateway) -> None:
    # Far more calls than the cap, but sequential: none is refused.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{capped.grpc_port}") as ch:
        stub = pb_grpc.ChatGatewayStub(ch)
        for n in range(CAP * 4):
            await stub.IssueToken(
                pb.IssueTokenRequest(user_id=f"user-{n}"), metadata=WEB_BACKEND, timeout=2
            )
    assert capped.admission.rpcs == 0


async def test_client_deadline_bounds_the_stream_call(
    capped: Gateway, stream_double: StreamDouble
) -> None:
    # Stream hangs far longer than the client's 0.5 s deadline: the inline sync is cut to
    # fit the deadline, so the call still answers OK (PENDING) inside it.
    stream_double.delay_s = 30.0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{capped.grpc_port}") as ch:
        stub = pb_grpc.ChatGatewayStub(ch)
        started = time.monotonic()
        reply = await stub.EnsureOrderChannel(
            numbered_request(99), metadata=ORDER_SERVICE, timeout=0.5
        )
        elapsed = time.monotonic() - started
    assert reply.channel.sync_state == pb.SYNC_STATE_PENDING
    assert elapsed < 0.5
    assert stream_double.requests_seen >= 1  # Stream was asked, and the answer not awaited
