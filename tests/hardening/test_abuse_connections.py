"""Idle and slow connections to the HTTP bridge cannot take the gateway down.

As reported: the bridge had no connection cap, no deadline for a request head and a
keep-alive of 3,630 s, so about 21,000 silent connections used up the process's 20,000
file descriptors; new gRPC connections failed and ``/healthz`` stopped answering. With a
limit of 1,024 descriptors, 1,100 connections were enough. Silent connections, half-sent
request heads and idle keep-alive connections all stayed open after 150 s.

- A gateway process whose descriptor limit is lowered to 1,024 (soft and hard: the gateway
  raises its soft limit to the hard one at start) gets 1,100 silent connections; gRPC and
  ``/healthz`` still answer on new connections, and the bridge holds at most half the
  limit (the connection cap), the longest-idle connections evicted.
- Each kind of slow connection is closed by the server within its timeout (plus a
  margin): silent, a request head trickled byte by byte, an idle keep-alive.
"""

from __future__ import annotations

import asyncio
import resource
import time
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from tests.helpers.gateways import GatewayFactory
from tests.helpers.processes import GatewayChildren, child_env
from tests.helpers.rpc import WEB_BACKEND

FD_LIMIT = 1024
IDLE_CONNECTIONS = 1100
HEADER_TIMEOUT_S = 1.0
KEEPALIVE_S = 4.0
CLOSE_MARGIN_S = 2.0
"""How long past its timeout a slow connection may stay open. Below the keep-alive timeout
minus the head timeout: aiohttp's own keep-alive timer also closes a connection that never
sent a request, so only the head deadline can close those two within their bound."""


def lower_fd_limit() -> None:
    """In the child, before the gateway starts: 1,024 descriptors, soft and hard."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


async def metric_samples(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """``name{labels}`` -> value of every sample at ``url`` (a ``/metrics`` endpoint)."""
    async with http.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        s.name + "".join(f",{k}={v}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def open_silent(port: int, count: int) -> list[asyncio.StreamWriter]:
    """``count`` connections to ``port`` that never send a byte."""
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
    return writers


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


@pytest.mark.slow
async def test_idle_connections_under_a_low_fd_limit_leave_grpc_and_healthz_up(
    tmp_path: Path, gateway_children: GatewayChildren
) -> None:
    # A long head deadline: the cap, not the deadline, must keep the descriptors free.
    env = {"CHAT_GATEWAY_LOG_FORMAT": "json", "CHAT_GATEWAY_HTTP_HEADER_TIMEOUT": "120"}
    child = await gateway_children.start(child_env(tmp_path, env), preexec_fn=lower_fd_limit)
    idle = await open_silent(child.http_port, IDLE_CONNECTIONS)
    try:
        async with grpc.aio.insecure_channel(child.grpc_addr) as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            token = await pb_grpc.ChatGatewayStub(channel).IssueToken(
                pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB_BACKEND, timeout=5
            )
        async with aiohttp.ClientSession() as http:
            async with http.get(child.http_url + "/healthz") as response:
                healthz = response.status
            samples = await metric_samples(http, child.http_url + "/metrics")
    finally:
        await close_all(idle)
    open_now = samples["chat_gateway_http_connections_open"]
    evicted = samples.get("chat_gateway_http_connections_closed_by_guard_total,reason=evicted", 0.0)
    print(  # noqa: T201 - figures for the report (pytest -s)
        f"fd limit {FD_LIMIT}, {IDLE_CONNECTIONS} silent connections: gRPC health "
        f"{health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}, /healthz "
        f"{healthz}, bridge connections open {open_now:.0f}, evicted {evicted:.0f}"
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert token.token
    assert healthz == 200
    assert open_now <= FD_LIMIT // 2
    assert evicted >= IDLE_CONNECTIONS - FD_LIMIT // 2


async def closed_after(reader: asyncio.StreamReader, bound_s: float) -> float:
    """Seconds until the server closes the connection (EOF or reset); fails past
    ``bound_s``."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(bound_s):
            for _ in range(100_000):  # bounded: the server sends nothing before closing
                if not await reader.read(65536):
                    break
    except TimeoutError:
        pytest.fail(f"the connection was still open after {bound_s:g}s")
    except ConnectionError:
        pass
    return time.monotonic() - started


async def test_silent_slow_and_idle_connections_are_closed(start_gateway: GatewayFactory) -> None:
    gw: Gateway = await start_gateway(
        http_header_timeout_s=HEADER_TIMEOUT_S, http_keepalive_s=KEEPALIVE_S
    )
    port = gw.http_port
    head_bound = HEADER_TIMEOUT_S + CLOSE_MARGIN_S
    idle_bound = KEEPALIVE_S + CLOSE_MARGIN_S

    async def silent() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await closed_after(reader, head_bound)
        finally:
            writer.close()

    async def trickled_head() -> float:
        # Slowloris: a request head one byte at a time, never finished.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
        started = time.monotonic()
        try:
            for byte in head:
                if reader.at_eof() or writer.is_closing():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
                if time.monotonic() - started > head_bound:
                    pytest.fail(f"a trickled request head still accepted after {head_bound:g}s")
            return await closed_after(reader, head_bound) + (time.monotonic() - started)
        except ConnectionError:
            return time.monotonic() - started
        finally:
            writer.close()

    async def idle_keepalive() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            async with asyncio.timeout(5):
                status = await reader.readline()
                assert status.startswith(b"HTTP/1.1 200"), status
                length = 0
                for _ in range(100):  # bounded: the response head's lines
                    line = await reader.readline()
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                    if line in (b"\r\n", b""):
                        break
                await reader.readexactly(length)
            return await closed_after(reader, idle_bound)
        finally:
            writer.close()

    silent_s, trickled_s, idle_s = await asyncio.gather(silent(), trickled_head(), idle_keepalive())
    print(  # noqa: T201 - figures for the report (pytest -s)
        f"closed by the server after: silent {silent_s:.2f}s, trickled head {trickled_s:.2f}s, "
        f"idle keep-alive {idle_s:.2f}s (timeouts {HEADER_TIMEOUT_S:g}s / {KEEPALIVE_S:g}s)"
    )
    async with aiohttp.ClientSession() as http:
        samples = await metric_samples(http, f"http://127.0.0.1:{port}/metrics")
    assert samples["chat_gateway_http_connections_closed_by_guard_total,reason=header_timeout"] >= 2
    assert samples["chat_gateway_http_connections_open"] == 1  # the scrape's own
