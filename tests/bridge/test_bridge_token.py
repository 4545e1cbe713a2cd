"""``/api/chat/stream/token`` over real HTTP: 200, 400, 405, 413, 415, 429."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from gateway.config import DEV_STREAM_API_KEY
from tests.helpers.bridge import (
    BUYER,
    TOKEN_PATH,
    bearer,
    error_of,
    session_jwt,
    stream_claims,
)
from tests.helpers.gateways import GatewayFactory

RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


async def test_get_token_default_ttl(http: aiohttp.ClientSession, bridge_url: str) -> None:
    async with http.get(bridge_url + TOKEN_PATH, headers=bearer(session_jwt(BUYER))) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.json()
    assert set(body) == {"token", "expiresAt", "apiKey", "userId"}
    assert (body["apiKey"], body["userId"]) == (DEV_STREAM_API_KEY, BUYER)
    assert RFC3339_UTC.fullmatch(body["expiresAt"])
    claims = stream_claims(body["token"])
    assert claims["user_id"] == BUYER
    assert claims["exp"] - claims["iat"] == 86_400 + 5  # iat 5 s back
    expires = datetime.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(expires.timestamp()) == claims["exp"]


async def test_get_token_ttl_in_query(http: aiohttp.ClientSession, bridge_url: str) -> None:
    url = f"{bridge_url}{TOKEN_PATH}?ttl=120"
    async with http.get(url, headers=bearer(session_jwt(BUYER))) as response:
        assert response.status == 200
        claims = stream_claims((await response.json())["token"])
    assert claims["exp"] - claims["iat"] == 120 + 5  # iat 5 s back


@pytest.mark.parametrize("body", [{"ttl": 300}, {"ttl": 300.0}])
async def test_post_token_ttl_in_body(
    http: aiohttp.ClientSession, bridge_url: str, body: dict[str, object]
) -> None:
    async with http.post(
        bridge_url + TOKEN_PATH, json=body, headers=bearer(session_jwt(BUYER))
    ) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        claims = stream_claims((await response.json())["token"])
    assert claims["exp"] - claims["iat"] == 300 + 5  # iat 5 s back


async def test_post_token_without_body(http: aiohttp.ClientSession, bridge_url: str) -> None:
    async with http.post(bridge_url + TOKEN_PATH, headers=bearer(session_jwt(BUYER))) as response:
        assert response.status == 200
        claims = stream_claims((await response.json())["token"])
    assert claims["exp"] - claims["iat"] == 86_400 + 5  # iat 5 s back


@pytest.mark.parametrize(
    "query", ["ttl=59", "ttl=86401", "ttl=0", "ttl=-60", "ttl=60.5", "ttl=abc", "ttl=", "ttl=1e3"]
)
async def test_bad_ttl_in_query_is_400(
    http: aiohttp.ClientSession, bridge_url: str, query: str
) -> None:
    async with http.get(
        f"{bridge_url}{TOKEN_PATH}?{query}", headers=bearer(session_jwt(BUYER))
    ) as response:
        assert response.status == 400
        assert await error_of(response) == "invalid_argument"
        assert "ttl" in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"ttl": 59}',
        b'{"ttl": 86401}',
        b'{"ttl": "300"}',
        b'{"ttl": true}',
        b'{"ttl": 300.5}',
        b'{"ttl": null}',
        b'{"ttl": 1e400}',
        b'{"ttl": 300, "user_id": "mallory"}',
        b"[300]",
        b'"ttl"',
        b"{not json",
        b"\xff\xfe",
        b"[" * 5000 + b"]" * 5000,
    ],
)
async def test_bad_body_is_400(http: aiohttp.ClientSession, bridge_url: str, raw: bytes) -> None:
    headers = {**bearer(session_jwt(BUYER)), "Content-Type": "application/json"}
    async with http.post(bridge_url + TOKEN_PATH, data=raw, headers=headers) as response:
        assert response.status == 400
        assert await error_of(response) == "invalid_argument"


async def test_ttl_twice_is_400(http: aiohttp.ClientSession, bridge_url: str) -> None:
    async with http.post(
        f"{bridge_url}{TOKEN_PATH}?ttl=120", json={"ttl": 120}, headers=bearer(session_jwt(BUYER))
    ) as response:
        assert response.status == 400
        assert await error_of(response) == "invalid_argument"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_non_json_body_is_415(
    http: aiohttp.ClientSession, bridge_url: str, content_type: str
) -> None:
    headers = {**bearer(session_jwt(BUYER)), "Content-Type": content_type}
    async with http.post(bridge_url + TOKEN_PATH, data=b"ttl=300", headers=headers) as response:
        assert response.status == 415
        assert await error_of(response) == "unsupported_media_type"


async def test_large_body_is_413(http: aiohttp.ClientSession, bridge_url: str) -> None:
    body = b'{"ttl": 300, "pad": "' + b"x" * 20_000 + b'"}'
    headers = {**bearer(session_jwt(BUYER)), "Content-Type": "application/json"}
    async with http.post(bridge_url + TOKEN_PATH, data=body, headers=headers) as response:
        assert response.status == 413
        assert await error_of(response) == "payload_too_large"


async def test_large_chunked_body_is_413(http: aiohttp.ClientSession, bridge_url: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 1024

    headers = {**bearer(session_jwt(BUYER)), "Content-Type": "application/json"}
    async with http.post(bridge_url + TOKEN_PATH, data=chunks(), headers=headers) as response:
        assert response.status == 413
        assert await error_of(response) == "payload_too_large"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(
    http: aiohttp.ClientSession, bridge_url: str, method: str
) -> None:
    async with http.request(
        method, bridge_url + TOKEN_PATH, headers=bearer(session_jwt(BUYER))
    ) as response:
        assert response.status == 405
        assert await error_of(response) == "method_not_allowed"
        assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


async def test_rate_limit_per_user_is_429_with_retry_after(
    http: aiohttp.ClientSession, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway(token_rate_limit_per_min=1.0, token_rate_limit_burst=3)
    url = f"http://127.0.0.1:{gw.http_port}{TOKEN_PATH}"
    statuses = []
    for ttl in (60, 61, 62, 63):  # new tokens (the same token again in a second is free)
        async with http.get(f"{url}?ttl={ttl}", headers=bearer(session_jwt(BUYER))) as response:
            statuses.append(response.status)
            if response.status == 429:
                assert await error_of(response) == "rate_limited"
                retry_after = int(response.headers["Retry-After"])
                assert 1 <= retry_after <= 60
    assert statuses == [200, 200, 200, 429]
    # The bucket is per user: another user is not limited.
    async with http.get(url, headers=bearer(session_jwt("seller-9"))) as response:
        assert response.status == 200


async def test_the_same_token_again_in_its_second_costs_no_allowance(
    http: aiohttp.ClientSession, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway(token_rate_limit_per_min=1.0, token_rate_limit_burst=1)
    url = f"http://127.0.0.1:{gw.http_port}{TOKEN_PATH}"
    tokens = set()
    statuses = []
    for _ in range(50):  # a page's refresh storm: same user, same lifetime, one second
        async with http.get(url, headers=bearer(session_jwt(BUYER))) as response:
            statuses.append(response.status)
            if response.status == 200:
                tokens.add((await response.json())["token"])
    # Within a second every answer is the one token (free); across a second boundary a new
    # token costs the bucket's only allowance: at most one more 200, then 429s.
    assert statuses.count(200) >= 25 and len(tokens) <= 2
    assert all(s in (200, 429) for s in statuses)


async def test_default_burst_holds_a_page_of_fifty_calls(
    http: aiohttp.ClientSession, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway()
    url = f"http://127.0.0.1:{gw.http_port}{TOKEN_PATH}"
    statuses = []
    for ttl in range(60, 110):  # 50 distinct tokens: none is a free repeat
        async with http.get(f"{url}?ttl={ttl}", headers=bearer(session_jwt(BUYER))) as response:
            statuses.append(response.status)
    assert statuses == [200] * 50
