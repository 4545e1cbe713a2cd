"""JSON logs of a whole scenario carry one line per RPC/request and never a secret.

A gateway process (dev profile, Stream backend on the Stream double, DEBUG level, JSON
lines) serves every RPC with real keys, the bridge with session JWTs (header and cookie),
failures of every kind and Stream errors; then every log line is parsed and searched for
the service keys, the Stream secret, the session secret, every issued token and every
session JWT (whole and its signature segment).
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.config import DEV_ORDER_SERVICE_KEY, DEV_SESSION_SECRET, DEV_WEB_BACKEND_KEY
from tests.bridge.conftest import session_jwt
from tests.conftest import ORDER_SERVICE, WEB_BACKEND
from tests.gateway_process import gateway_child
from tests.hardening.test_drain import ensure_request
from tests.stream_double import StreamDouble
from tests.stream_double.fixtures import STREAM_TEST_SECRET

WRONG_KEY = "not-a-real-service-key-4711"
M = "/tradetrust.chat.v1.ChatGateway/"


@pytest.mark.slow
async def test_scenario_logs_are_json_lines_without_secrets(
    tmp_path: Path, stream_env: dict[str, str], stream_double: StreamDouble
) -> None:
    env = {
        **stream_env,
        "CHAT_GATEWAY_LOG_FORMAT": "json",
        "CHAT_GATEWAY_LOG_LEVEL": "DEBUG",
        "CHAT_GATEWAY_ACCESS_LOG": "true",
    }
    secrets = [DEV_ORDER_SERVICE_KEY, DEV_WEB_BACKEND_KEY, STREAM_TEST_SECRET, DEV_SESSION_SECRET]
    secrets.append(WRONG_KEY)
    rpcs = 0
    async with gateway_child(tmp_path, env) as child:
        async with grpc.aio.insecure_channel(child.grpc_addr) as ch:
            stub = pb_grpc.ChatGatewayStub(ch)
            traced = (*WEB_BACKEND, ("x-request-id", "trace-me-123"))
            issued = await stub.IssueToken(pb.IssueTokenRequest(user_id="buyer-1"), metadata=traced)
            secrets.append(issued.token)
            rpcs += 1
            created = await stub.EnsureOrderChannel(ensure_request(1), metadata=ORDER_SERVICE)
            assert created.created
            rpcs += 1
            answer = await stub.AuthorizeParticipant(
                pb.AuthorizeParticipantRequest(order_id="ord-drain-1", user_id="buyer-1"),
                metadata=WEB_BACKEND,
            )
            assert answer.allowed
            rpcs += 1
            failures: list[tuple[object, grpc.StatusCode]] = [
                (
                    stub.IssueToken(
                        pb.IssueTokenRequest(user_id="buyer-1"),
                        metadata=(("authorization", f"Bearer {WRONG_KEY}"),),
                    ),
                    grpc.StatusCode.UNAUTHENTICATED,
                ),
                (
                    stub.EnsureOrderChannel(ensure_request(2), metadata=WEB_BACKEND),
                    grpc.StatusCode.PERMISSION_DENIED,
                ),
                (
                    stub.IssueToken(pb.IssueTokenRequest(user_id="bad id!"), metadata=WEB_BACKEND),
                    grpc.StatusCode.INVALID_ARGUMENT,
                ),
                (
                    stub.AuthorizeParticipant(
                        pb.AuthorizeParticipantRequest(order_id="missing", user_id="buyer-1"),
                        metadata=ORDER_SERVICE,
                    ),
                    grpc.StatusCode.NOT_FOUND,
                ),
            ]
            for call, expected in failures:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call  # type: ignore[misc]
                assert caught.value.code() is expected
                rpcs += 1
            # Stream failing: a 500, then a rate limit; the order stays pending.
            stream_double.inject(500, count=2)
            stream_double.rate_limit(1.0)
            pending = await stub.EnsureOrderChannel(ensure_request(3), metadata=ORDER_SERVICE)
            assert pending.channel.order_id == "ord-drain-3"
            rpcs += 1

        base = child.http_url
        good = session_jwt("buyer-1")
        expired = session_jwt("buyer-1", exp_in=-120)
        tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
        secrets += [good, expired, tampered]
        secrets += [t.rsplit(".", 1)[1] for t in (good, expired, tampered)]
        async with aiohttp.ClientSession() as http:
            token_url = f"{base}/api/chat/stream/token"
            async with http.get(token_url, headers={"Authorization": f"Bearer {good}"}) as r:
                assert r.status == 200
                secrets.append((await r.json())["token"])
            async with http.post(
                token_url, json={"ttl": 600}, headers={"Cookie": f"tt_session={good}"}
            ) as r:
                assert r.status == 200
                secrets.append((await r.json())["token"])
            async with http.post(
                f"{base}/api/chat/stream/channel",
                json={"orderId": "ord-drain-1"},
                headers={"Authorization": f"Bearer {good}", "X-Request-Id": "trace-http-9"},
            ) as r:
                assert r.status == 200
            for bad in (expired, tampered):
                async with http.get(token_url, headers={"Authorization": f"Bearer {bad}"}) as r:
                    assert r.status == 401
            async with http.get(
                f"{token_url}?ttl=5", headers={"Authorization": f"Bearer {good}"}
            ) as r:
                assert r.status == 400
        exit_code = await child.terminate()
        lines = child.lines()

    assert exit_code == 0
    assert len(lines) > 20
    records = [json.loads(line) for line in lines]
    for record in records:
        assert {"ts", "level", "logger", "msg"} <= set(record)
    for n, line in enumerate(lines):
        for secret in secrets:
            assert secret not in line, f"log line {n} leaks a secret: {line[:200]}"

    access = [r for r in records if r["logger"] == "gateway.access"]
    rpc_lines = [r for r in access if r["msg"] == "rpc"]
    assert len(rpc_lines) == rpcs
    for r in rpc_lines:
        assert {"method", "code", "duration_ms", "service", "request_id"} <= set(r)
    traced_line = next(r for r in rpc_lines if r["request_id"] == "trace-me-123")
    assert traced_line["method"] == M + "IssueToken"
    assert traced_line["code"] == "OK" and traced_line["service"] == "web-backend"
    assert {r["code"] for r in rpc_lines} >= {
        "OK",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
    }
    http_lines = [r for r in access if r["msg"] == "http"]
    assert len(http_lines) == 6
    assert sorted(r["status"] for r in http_lines) == [200, 200, 200, 400, 401, 401]
    assert any(r["request_id"] == "trace-http-9" for r in http_lines)
    events = [r["event"] for r in records if "event" in r]
    assert events == ["starting", "serving", "draining", "stopped"]
