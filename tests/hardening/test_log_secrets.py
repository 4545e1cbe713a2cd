"""JSON logs of a whole scenario carry one line per RPC/request and never a secret.

A gateway process (dev profile, Stream backend on the Stream double, DEBUG level, JSON
lines) serves every RPC with real keys, the bridge with session JWTs (header and cookie),
failures of every kind and Stream errors; then every log line is parsed and searched for
the service keys, the Stream secret, the session secret, every issued token and every
session JWT (whole and its signature segment).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.config import DEV_ORDER_SERVICE_KEY, DEV_SESSION_SECRET, DEV_WEB_BACKEND_KEY
from tests.helpers.bridge import CHANNEL_PATH, TOKEN_PATH, bearer, session_jwt
from tests.helpers.builders import numbered_request
from tests.helpers.processes import GatewayChildren, child_env
from tests.helpers.rpc import GATEWAY_METHOD as M
from tests.helpers.rpc import ORDER_SERVICE, WEB_BACKEND, status_of
from tests.stream_double import StreamDouble
from tests.stream_double.fixtures import STREAM_TEST_SECRET

pytestmark = pytest.mark.slow

WRONG_KEY = "not-a-real-service-key-4711"


@dataclass
class ScenarioLog:
    """What the scenario left behind."""

    exit_code: int
    lines: list[str]
    secrets: list[str]
    rpcs: int

    @functools.cached_property
    def records(self) -> list[dict[str, Any]]:
        """Every line, parsed (each must be one JSON object)."""
        return [json.loads(line) for line in self.lines]

    def access(self, msg: str) -> list[dict[str, Any]]:
        """The access log lines of one kind (``rpc`` or ``http``)."""
        return [r for r in self.records if r["logger"] == "gateway.access" and r["msg"] == msg]


@pytest.fixture
async def scenario(
    tmp_path: Path,
    stream_env: dict[str, str],
    stream_double: StreamDouble,
    gateway_children: GatewayChildren,
) -> ScenarioLog:
    """Run the scenario against a gateway process, stop it, and collect its log."""
    env = {
        **stream_env,
        "CHAT_GATEWAY_LOG_FORMAT": "json",
        "CHAT_GATEWAY_LOG_LEVEL": "DEBUG",
        "CHAT_GATEWAY_ACCESS_LOG": "true",
    }
    secrets = [DEV_ORDER_SERVICE_KEY, DEV_WEB_BACKEND_KEY, STREAM_TEST_SECRET, DEV_SESSION_SECRET]
    secrets.append(WRONG_KEY)
    rpcs = 0
    child = await gateway_children.start(child_env(tmp_path, env))
    async with grpc.aio.insecure_channel(child.grpc_addr) as ch:
        stub = pb_grpc.ChatGatewayStub(ch)
        traced = (*WEB_BACKEND, ("x-request-id", "trace-me-123"))
        issued = await stub.IssueToken(pb.IssueTokenRequest(user_id="buyer-1"), metadata=traced)
        secrets.append(issued.token)
        rpcs += 1
        created = await stub.EnsureOrderChannel(numbered_request(1), metadata=ORDER_SERVICE)
        assert created.created
        rpcs += 1
        answer = await stub.AuthorizeParticipant(
            pb.AuthorizeParticipantRequest(order_id="ord-1", user_id="buyer-1"),
            metadata=WEB_BACKEND,
        )
        assert answer.allowed
        rpcs += 1
        failures: list[tuple[Any, grpc.StatusCode]] = [
            (
                stub.IssueToken(
                    pb.IssueTokenRequest(user_id="buyer-1"),
                    metadata=(("authorization", f"Bearer {WRONG_KEY}"),),
                ),
                grpc.StatusCode.UNAUTHENTICATED,
            ),
            (
                stub.EnsureOrderChannel(numbered_request(2), metadata=WEB_BACKEND),
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
            assert await status_of(call) is expected
            rpcs += 1
        # Stream failing: a 500, then a rate limit; the order stays pending.
        stream_double.inject(500, count=2)
        stream_double.rate_limit(1.0)
        pending = await stub.EnsureOrderChannel(numbered_request(3), metadata=ORDER_SERVICE)
        assert pending.channel.order_id == "ord-3"
        rpcs += 1

    base = child.http_url
    good = session_jwt("buyer-1")
    expired = session_jwt("buyer-1", exp_in=-120)
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    secrets += [good, expired, tampered]
    secrets += [t.rsplit(".", 1)[1] for t in (good, expired, tampered)]
    async with aiohttp.ClientSession() as http:
        token_url = base + TOKEN_PATH
        async with http.get(token_url, headers=bearer(good)) as r:
            assert r.status == 200
            secrets.append((await r.json())["token"])
        async with http.post(
            token_url, json={"ttl": 600}, headers={"Cookie": f"tt_session={good}"}
        ) as r:
            assert r.status == 200
            secrets.append((await r.json())["token"])
        async with http.post(
            base + CHANNEL_PATH,
            json={"orderId": "ord-1"},
            headers={**bearer(good), "X-Request-Id": "trace-http-9"},
        ) as r:
            assert r.status == 200
        for bad in (expired, tampered):
            async with http.get(token_url, headers=bearer(bad)) as r:
                assert r.status == 401
        async with http.get(f"{token_url}?ttl=5", headers=bearer(good)) as r:
            assert r.status == 400
    exit_code = await child.terminate()
    return ScenarioLog(exit_code, child.lines(), secrets, rpcs)


def test_scenario_logs_are_json_lines_without_secrets(scenario: ScenarioLog) -> None:
    assert scenario.exit_code == 0
    assert len(scenario.lines) > 20
    for record in scenario.records:
        assert {"ts", "level", "logger", "msg"} <= set(record)
    for n, line in enumerate(scenario.lines):
        for secret in scenario.secrets:
            assert secret not in line, f"log line {n} leaks a secret: {line[:200]}"


def test_every_rpc_has_one_access_line(scenario: ScenarioLog) -> None:
    rpc_lines = scenario.access("rpc")
    assert len(rpc_lines) == scenario.rpcs
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


def test_every_http_request_has_one_access_line(scenario: ScenarioLog) -> None:
    http_lines = scenario.access("http")
    assert len(http_lines) == 6
    assert sorted(r["status"] for r in http_lines) == [200, 200, 200, 400, 401, 401]
    assert any(r["request_id"] == "trace-http-9" for r in http_lines)


def test_lifecycle_events_are_logged_in_order(scenario: ScenarioLog) -> None:
    events = [r["event"] for r in scenario.records if "event" in r]
    assert events == ["starting", "serving", "draining", "stopped"]
