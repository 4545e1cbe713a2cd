"""A participant hammering the channel route of a pending order does not hammer Stream.

As reported: a logged-in buyer running 20 parallel loops of ``POST
/api/chat/stream/channel`` on an order still pending (Stream failing) made the gateway call
Stream 648 times in 10 s, and reset the order's backoff (failed attempts 7 -> 169, the next
attempt 2 s away).

Here Stream (the double) fails every request; the order is recorded (pending), then 20
loops of the buyer post to the channel route for 10 s. The per-user rate limit is lifted
so every request reaches the sync logic: one inline attempt at a time per order (shared by
every request) and only when the order's backoff allows. Stream must see at most 60 calls in
those 10 s, and the order's next attempt must lie where the backoff of its failure count puts
it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter

import aiohttp
import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from gateway.outbox import SyncPolicy
from tests.helpers.bridge import CHANNEL_PATH, bearer, session_jwt
from tests.helpers.builders import ensure_request
from tests.helpers.gateways import GatewayFactory
from tests.helpers.rpc import ORDER_SERVICE
from tests.stream_double import StreamDouble

pytestmark = pytest.mark.slow

LOOPS = 20
HAMMER_S = 10.0
MAX_STREAM_CALLS = 60
MAX_REQUESTS_PER_LOOP = 20_000
SLACK_S = 0.5
"""Between the double's receiving a call and the gateway's recording its failure."""


def sync_row(gw: Gateway, order_id: str) -> tuple[str, int, float]:
    """``(sync_state, failed_attempts, next_attempt_at)`` of the order, read from the file."""
    path = gw.settings.registry.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        row = db.execute(
            "SELECT sync_state, failed_attempts, next_attempt_at FROM orders WHERE order_id = ?",
            (order_id,),
        ).fetchone()
    assert row is not None, order_id
    return str(row[0]), int(row[1]), float(row[2])


async def test_hammering_a_pending_order_leaves_stream_and_the_backoff_alone(
    start_gateway: GatewayFactory, stream_env: dict[str, str], stream_double: StreamDouble
) -> None:
    env = {
        **stream_env,
        "CHAT_GATEWAY_SYNC_BACKOFF_CAP": "300",  # the default, not the fixture's short one
        "CHAT_GATEWAY_CHANNEL_RATE_LIMIT": "1000000",
        "CHAT_GATEWAY_CHANNEL_RATE_BURST": "1000000",
        "CHAT_GATEWAY_ACCESS_LOG": "false",
    }
    gw = await start_gateway(env)
    stream_double.inject(500, count=1_000_000)  # Stream fails everything
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        reply = await pb_grpc.ChatGatewayStub(channel).EnsureOrderChannel(
            ensure_request("ord-1", "buyer-1", "seller-1"), metadata=ORDER_SERVICE, timeout=10
        )
    assert reply.channel.sync_state == pb.SYNC_STATE_PENDING
    _, failed_before, _ = sync_row(gw, "ord-1")

    statuses: Counter[int] = Counter()
    calls_before = stream_double.requests_seen
    started = time.monotonic()
    until = started + HAMMER_S
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{gw.http_port}{CHANNEL_PATH}"
        headers = bearer(session_jwt("buyer-1"))

        async def loop() -> None:
            for _ in range(MAX_REQUESTS_PER_LOOP):
                if time.monotonic() >= until:
                    return
                async with http.post(url, json={"orderId": "ord-1"}, headers=headers) as r:
                    await r.read()
                    statuses[r.status] += 1

        await asyncio.gather(*(loop() for _ in range(LOOPS)))
    calls = stream_double.requests_seen - calls_before
    state, failed_after, next_attempt_at = sync_row(gw, "ord-1")
    last_call = max(c.time for c in stream_double.calls)
    policy = SyncPolicy(backoff_cap_s=300.0)
    ceiling = min(policy.backoff_cap_s, policy.backoff_base_s * 2.0 ** (failed_after - 1))
    print(  # noqa: T201 - figures for the report (pytest -s)
        f"channel hammer: {sum(statuses.values())} requests in {time.monotonic() - started:.1f}s "
        f"{dict(statuses)}; Stream calls {calls}; failed attempts {failed_before} -> "
        f"{failed_after}; next attempt {next_attempt_at - last_call:.1f}s after the last call "
        f"(backoff for {failed_after} failures: {ceiling / 2:g}-{ceiling:g}s)"
    )
    assert statuses[200] > 0
    assert state == "pending"
    assert calls <= MAX_STREAM_CALLS
    # Failures only ever add up, and the next attempt is as far off as they demand.
    assert failed_after >= failed_before
    assert next_attempt_at >= last_call + ceiling / 2 - SLACK_S
