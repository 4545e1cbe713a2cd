"""Talking to the HTTP bridge: its paths, session JWTs (good and forged), its JSON errors,
and the Stream tokens it hands out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
import jwt

from gateway.config import DEV_SESSION_SECRET, DEV_STREAM_API_SECRET

TOKEN_PATH = "/api/chat/stream/token"
CHANNEL_PATH = "/api/chat/stream/channel"
BUYER = "buyer-1"
SELLER = "seller-1"
ORDER = "ord-1"


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


def stream_claims(token: str) -> dict[str, Any]:
    """Verify a Stream user token with the dev Stream secret and return its claims."""
    claims: dict[str, Any] = jwt.decode(
        token, DEV_STREAM_API_SECRET, algorithms=["HS256"], options={"require": ["exp", "iat"]}
    )
    return claims
