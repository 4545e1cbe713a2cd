"""Bridge request handlers: session in, service layer, contract JSON out.

Handlers that need the gateway take the :class:`BridgeContext` first; the application
binds it when it registers them.

The user id comes only from the verified session, never from the request. Handlers raise
domain errors; :mod:`gateway.bridge.errors` turns them into the JSON error model.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from gateway.bridge.ratelimit import TokenBucketLimiter
from gateway.bridge.session import SessionVerifier
from gateway.domain import (
    InvalidArgumentError,
    IssuedToken,
    OrderChannel,
    RequestTimeoutError,
    Role,
    UnavailableError,
)
from gateway.registry import OrderRegistry
from gateway.service import ChatService

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
"""Largest request body the bridge reads; larger ones get 413."""

READINESS_TIMEOUT_S = 1.0

_DIGITS = re.compile(r"[0-9]{1,10}")
# Prebuilt for the hot routes, with what the edge middleware would add anyway (Vary,
# nosniff), so it has nothing to insert; the token route's fast lane writes the same.
TOKEN_HEADERS = CIMultiDict(
    {
        "Content-Type": "application/json; charset=utf-8",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "Vary": "Origin",
        "X-Content-Type-Options": "nosniff",
    }
)
_NO_COOKIES: dict[str, str] = {}
_HEALTHZ_BODY = b'{"status": "ok"}'
_HEALTHZ_HEADERS = CIMultiDict(
    {
        "Content-Type": "application/json; charset=utf-8",
        "Cache-Control": "no-store",
        "Vary": "Origin",
        "X-Content-Type-Options": "nosniff",
    }
)
_FIELD_NAMES = {"order_id": "orderId", "user_id": "userId"}
"""Service field paths -> the bridge's JSON names, so messages name what the caller sent."""


@dataclass
class Readiness:
    """Whether the gateway around the bridge has finished starting (and not begun stopping)."""

    started: bool = False


@dataclass
class BridgeContext:
    """What the handlers need, stored once in the application."""

    service: ChatService
    registry: OrderRegistry
    verifier: SessionVerifier
    limiter: TokenBucketLimiter
    """Per-user limit of token requests."""
    document: dict[str, Any]
    readiness: Readiness = field(default_factory=Readiness)
    channel_limiter: TokenBucketLimiter = field(
        default_factory=lambda: TokenBucketLimiter(rate_per_s=1.0, burst=20)
    )
    """Per-user limit of channel requests."""
    body_timeout_s: float = 10.0
    """Seconds a request has to send its body (``CHAT_GATEWAY_HTTP_BODY_TIMEOUT``)."""


CONTEXT = web.AppKey("bridge_context", BridgeContext)


@functools.lru_cache(maxsize=256)
def _rfc3339_seconds(epoch_s: int) -> str:
    """``2026-11-25T19:53:40Z``; token expiries repeat across users, so each second is
    formatted once."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=8)
def _json_string(value: str) -> str:
    return json.dumps(value)


def token_json(issued: IssuedToken) -> str:
    """The token response body.

    Hot path: the token (base64url and dots) and the user id (validated to
    ``[A-Za-z0-9@_-]``) need no JSON escaping; the configured API key is escaped once.
    """
    return (
        f'{{"token":"{issued.token}","expiresAt":"{_rfc3339_seconds(issued.expire_epoch)}",'
        f'"apiKey":{_json_string(issued.api_key)},"userId":"{issued.user_id}"}}'
    )


def _renamed(error: InvalidArgumentError) -> InvalidArgumentError:
    name = _FIELD_NAMES.get(error.field)
    return InvalidArgumentError(name, error.description) if name else error


def _authenticate(ctx: BridgeContext, request: web.Request) -> str:
    authorization = request.headers.get("Authorization")
    # The Cookie header is parsed only when there is no Authorization header.
    cookies = request.cookies if authorization is None else _NO_COOKIES
    return ctx.verifier.user_id(ctx.verifier.token_from(authorization, cookies))


async def _json_object(
    request: web.Request, *, required: bool, timeout_s: float
) -> dict[str, Any] | None:
    """The request's JSON object body; ``None`` when there is none and none is required."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY_BYTES, actual_size=request.content_length
        )
    if not request.body_exists:
        if required:
            raise InvalidArgumentError("body", "a JSON object is required")
        return None
    ctype = request.content_type
    if ctype != "application/json" and not (
        ctype.startswith("application/") and ctype.endswith("+json")
    ):
        raise web.HTTPUnsupportedMediaType()
    try:
        async with asyncio.timeout(timeout_s):
            raw = await request.read()  # the app's client_max_size bounds chunked bodies (413)
    except TimeoutError as exc:
        raise RequestTimeoutError(f"body: not received within {timeout_s:g}s") from exc
    if not raw.strip():
        if required:
            raise InvalidArgumentError("body", "a JSON object is required")
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgumentError("body", "is not valid JSON") from exc
    if not isinstance(data, dict):
        raise InvalidArgumentError("body", "must be a JSON object")
    return data


def _only_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidArgumentError(unknown[0][:64], "is not a known field")


def _ttl_from_query(raw: str) -> timedelta:
    if _DIGITS.fullmatch(raw) is None:
        raise InvalidArgumentError("ttl", "must be a whole number of seconds")
    return timedelta(seconds=int(raw))


def _ttl_from_json(value: Any) -> timedelta:
    # JSON has one number type: 300.0 is the integer 300, but 300.5 and true are not.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError("ttl", "must be a whole number of seconds")
    if isinstance(value, float) and not value.is_integer():
        raise InvalidArgumentError("ttl", "must be a whole number of seconds")
    if not 0 <= value <= 10**9:
        raise InvalidArgumentError("ttl", "is out of range")
    return timedelta(seconds=int(value))


async def _ttl_of(ctx: BridgeContext, request: web.Request) -> timedelta | None:
    query = request.query.getall("ttl", [])
    if len(query) > 1:
        raise InvalidArgumentError("ttl", "give it once")
    ttl = _ttl_from_query(query[0]) if query else None
    if request.method == "POST":
        body = await _json_object(request, required=False, timeout_s=ctx.body_timeout_s)
        if body is not None:
            _only_fields(body, {"ttl"})
            if "ttl" in body:
                if ttl is not None:
                    raise InvalidArgumentError("ttl", "give it in the query or the body, not both")
                ttl = _ttl_from_json(body["ttl"])
    return ttl


async def issue_token(ctx: BridgeContext, request: web.Request) -> web.Response:
    """``GET``/``POST /api/chat/stream/token``: a Stream token for the session's user."""
    user_id = _authenticate(ctx, request)
    # The token provider's usual call (GET, no query) skips query and body parsing.
    ttl = (
        None
        if request.method == "GET" and not request.query_string
        else await _ttl_of(ctx, request)
    )
    body = token_json(token_for(ctx, user_id, ttl)).encode()
    return web.Response(body=body, headers=TOKEN_HEADERS)


def token_for(ctx: BridgeContext, user_id: str, ttl: timedelta | None) -> IssuedToken:
    """The token route's answer for the session's ``user_id``, within the per-user limit.

    A page's refresh storm asks many times within a second: the token already issued to
    the user in this second is the answer, and costs no rate-limit allowance.
    """
    try:
        issued = ctx.service.issued_this_second(user_id, ttl)
        if issued is None:
            ctx.limiter.acquire(user_id)
            issued = ctx.service.issue_token(user_id, ttl)
    except InvalidArgumentError as exc:
        raise _renamed(exc) from exc
    return issued


def channel_json(channel: OrderChannel, role: Role) -> dict[str, Any]:
    """The contract's channel object."""
    return {
        "orderId": channel.order_id,
        "channelType": channel.channel_type,
        "channelId": channel.channel_id,
        "cid": channel.cid,
        "role": role.value,
        "members": list(channel.member_ids),
        "syncState": channel.sync_state.value,
        "state": channel.state.value,
    }


async def open_channel(ctx: BridgeContext, request: web.Request) -> web.Response:
    """``POST /api/chat/stream/channel {"orderId"}``: the order's channel for a participant."""
    user_id = _authenticate(ctx, request)
    ctx.channel_limiter.acquire(user_id)
    body = await _json_object(request, required=True, timeout_s=ctx.body_timeout_s)
    assert body is not None
    _only_fields(body, {"orderId"})
    order_id = body.get("orderId")
    if order_id is None:
        raise InvalidArgumentError("orderId", "is required")
    if not isinstance(order_id, str):
        raise InvalidArgumentError("orderId", "must be a string")
    try:
        channel, role = await ctx.service.open_order_channel(order_id, user_id)
    except InvalidArgumentError as exc:
        raise _renamed(exc) from exc
    response = web.json_response(channel_json(channel, role))
    response.headers["Cache-Control"] = "no-store"
    return response


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process and its event loop answer."""
    return web.Response(body=_HEALTHZ_BODY, headers=_HEALTHZ_HEADERS)


async def readyz(ctx: BridgeContext, request: web.Request) -> web.Response:
    """Readiness: the gateway has started and the registry answers within a second."""
    if not ctx.readiness.started:
        raise UnavailableError("gateway is not started")
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            await ctx.registry.check()
    except Exception as exc:
        logger.warning("readiness: registry does not answer: %s", type(exc).__name__)
        raise UnavailableError("registry does not answer") from exc
    return web.json_response({"status": "ready"}, headers={"Cache-Control": "no-store"})


async def openapi(ctx: BridgeContext, request: web.Request) -> web.Response:
    """The bridge's OpenAPI 3 document."""
    return web.json_response(ctx.document)
