"""Graceful drain: SIGTERM to a gateway process while 50 slow RPCs are in flight.

The calls are slow honestly: the gateway runs the Stream backend against the Stream double,
which answers every request after a delay, so each EnsureOrderChannel spends about 1.5 s in
its inline sync.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from tests.helpers.builders import numbered_request
from tests.helpers.polling import eventually
from tests.helpers.processes import GatewayChildren, child_env
from tests.helpers.rpc import ORDER_SERVICE, WEB_BACKEND
from tests.stream_double import StreamDouble

IN_FLIGHT = 50
GRACE_S = 10.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def slow_env(stream_env: dict[str, str]) -> dict[str, str]:
    """Stream backend on the double: each Stream call may take 5 s, the inline sync 1.5 s."""
    return {
        **stream_env,
        "CHAT_GATEWAY_STREAM_TIMEOUT": "5",
        "CHAT_GATEWAY_INLINE_SYNC_BUDGET": "1.5",
        "CHAT_GATEWAY_SYNC_POLL_INTERVAL": "0.2",
        "CHAT_GATEWAY_LOG_FORMAT": "json",
    }


@pytest.mark.slow
async def test_sigterm_drains_in_flight_calls_and_exits_zero(
    tmp_path: Path,
    stream_env: dict[str, str],
    stream_double: StreamDouble,
    gateway_children: GatewayChildren,
) -> None:
    env = {**slow_env(stream_env), "CHAT_GATEWAY_SHUTDOWN_GRACE": str(GRACE_S)}
    child = await gateway_children.start(child_env(tmp_path, env))
    stream_double.delay_s = 0.7  # two Stream calls per order: ~1.4 s
    async with (
        grpc.aio.insecure_channel(child.grpc_addr) as calls_channel,
        grpc.aio.insecure_channel(child.grpc_addr) as probe_channel,
    ):
        stub = pb_grpc.ChatGatewayStub(calls_channel)
        health = health_pb2_grpc.HealthStub(probe_channel)
        probe = pb_grpc.ChatGatewayStub(probe_channel)
        calls = [
            asyncio.ensure_future(
                stub.EnsureOrderChannel(numbered_request(n), metadata=ORDER_SERVICE, timeout=20)
            )
            for n in range(IN_FLIGHT)
        ]
        # Every call is in flight in the gateway (waiting for Stream), by its own metrics.
        async with aiohttp.ClientSession() as http:

            async def all_in_flight() -> bool:
                async with http.get(child.http_url + "/metrics") as response:
                    text = await response.text()
                return f"chat_gateway_rpcs_in_flight {float(IN_FLIGHT)}" in text

            await eventually(all_in_flight, timeout_s=10, interval_s=0.02)
        assert not any(c.done() for c in calls)

        sent = time.monotonic()
        child.proc.send_signal(signal.SIGTERM)
        observed: list[tuple[float, str]] = []
        refused_new_work: grpc.StatusCode | None = None
        for _ in range(1000):  # bounded: ~20 ms apart, stops once everything is done
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.aio.AioRpcError as exc:
                status = exc.code().name
            observed.append((time.monotonic() - sent, status))
            if status == "NOT_SERVING" and refused_new_work is None:
                try:
                    await probe.IssueToken(
                        pb.IssueTokenRequest(user_id="late"), metadata=WEB_BACKEND, timeout=2
                    )
                except grpc.aio.AioRpcError as exc:
                    refused_new_work = exc.code()
            if all(c.done() for c in calls) or time.monotonic() - sent > GRACE_S + 5:
                break
            await asyncio.sleep(0.02)
        finished_after = time.monotonic() - sent
        replies = await asyncio.gather(*calls)
    async with asyncio.timeout(GRACE_S + 5):  # no second signal: just wait for the exit
        code = await child.proc.wait()
    exited_after = time.monotonic() - sent

    assert len(replies) == IN_FLIGHT
    assert all(r.channel.order_id == f"ord-{n}" for n, r in enumerate(replies))
    assert code == 0, child.log_tail()
    assert exited_after < GRACE_S, f"exit took {exited_after:.2f}s"
    statuses = [s for _, s in observed]
    first_change = next(s for s in statuses if s != "SERVING")
    assert first_change == "NOT_SERVING", observed[:20]
    assert refused_new_work is grpc.StatusCode.UNAVAILABLE
    # Health said NOT_SERVING while the calls were still in flight (not only at the end).
    first_not_serving = next(t for t, s in observed if s == "NOT_SERVING")
    assert first_not_serving < finished_after
    events = [line.get("event") for line in child.json_lines() if line.get("event")]
    assert events.index("draining") < events.index("stopped")
    assert events[-1] == "stopped"
    print(  # noqa: T201 - figures for the report (pytest -s)
        f"drain: {IN_FLIGHT} calls OK, NOT_SERVING after {first_not_serving:.3f}s, calls done "
        f"after {finished_after:.2f}s, exit 0 after {exited_after:.2f}s"
    )
