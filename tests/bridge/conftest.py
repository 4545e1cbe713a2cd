"""Fixtures for the HTTP bridge: session JWTs, an HTTP client, bridge gateways on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import jwt
import pytest

from gateway.app import Gateway
from gateway.config import DEV_SESSION_SECRET
from gateway.domain import Participant
from tests.conftest import SettingsFactory

TOKEN_PATH = "/api/chat/stream/token"
CHANNEL_PATH = "/api/chat/stream/channel"
BUYER = "buyer-1"
SELLER = "seller-1"
ORDER = "ord-1"

GatewayFactory = Callable[..., Awaitable[Gateway]]


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWTs use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def session_claims(sub: Any = BUYER, *, exp_in: float | None = 300, **extra: Any) -> dict[str, Any]:
    """Claims of a session JWT: ``sub``, ``iat`` and ``exp`` (unless ``exp_in`` is None)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now}
    if exp_in is not None:
        claims["exp"] = now + int(exp_in)
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def session_jwt(
    sub: Any = BUYER,
    *,
    key: Any = DEV_SESSION_SECRET,
    algorithm: str = "HS256",
    exp_in: float | None = 300,
    **extra: Any,
) -> str:
    """A session JWT signed the ordinary way (PyJWT)."""
    return jwt.encode(session_claims(sub, exp_in=exp_in, **extra), key, algorithm=algorithm)


def forged_jwt(
    header: dict[str, Any],
    claims: dict[str, Any],
    hmac_key: bytes | None,
    digest: str = "sha256",
) -> str:
    """A hand-assembled JWT, for tokens PyJWT refuses to make (``alg: none``, HS256 keyed
    with a public key PEM)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = b""
    if hmac_key is not None:
        signature = hmac.new(hmac_key, signing_input.encode(), getattr(hashlib, digest)).digest()
    return f"{signing_input}.{b64url(signature)}"


def bearer(token: str) -> dict[str, str]:
    """``Authorization: Bearer <token>``."""
    return {"Authorization": f"Bearer {token}"}


async def error_of(response: aiohttp.ClientResponse) -> str:
    """Assert the contract's JSON error body and return its code."""
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    code = body["error"]["code"]
    assert isinstance(code, str)
    return code


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client (no cookie jar: tests send cookies explicitly)."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=15)
    ) as session:
        yield session


@pytest.fixture
def bridge_url(gateway: Gateway) -> str:
    """Base URL of the default test gateway's bridge."""
    return f"http://127.0.0.1:{gateway.http_port}"


@pytest.fixture
async def order(gateway: Gateway) -> str:
    """Order ``ord-1`` of buyer-1 and seller-1, recorded through the service layer."""
    await gateway.service.ensure_order_channel(ORDER, Participant(BUYER), Participant(SELLER))
    return ORDER


@pytest.fixture
async def make_gateway(make_settings: SettingsFactory) -> AsyncIterator[GatewayFactory]:
    """Start extra gateways with settings overrides; all are stopped after the test."""
    async with AsyncExitStack() as stack:

        async def factory(env: dict[str, str] | None = None, **overrides: Any) -> Gateway:
            gw = Gateway(make_settings(env, **overrides))
            await gw.start()
            stack.push_async_callback(gw.stop, 1.0)
            return gw

        yield factory
