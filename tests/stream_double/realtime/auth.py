"""Which requests are the client-side API's, and who makes them.

Stream tells its two APIs apart by the token: a server token (``server: true``, signed with
the app secret) may act for anyone; a user token (``user_id`` claim) acts for that user only.
The browser SDK sends its token in ``Authorization`` with ``Stream-Auth-Type: jwt`` on REST
calls, and as the ``authorization`` query parameter on the WebSocket ``/connect``.
Preflights (no credentials, by the CORS rules) and uploaded files (public URLs, like Stream's
CDN) need no token.
"""

from __future__ import annotations

import enum
from typing import Any

import jwt
from aiohttp import web

from tests.stream_double import StreamDouble, StreamError
from tests.stream_double.realtime.state import state_of

__all__ = ["AUTH_ERROR", "CONNECT_PATH", "KIND", "UPLOADS_PREFIX", "USER", "Kind"]

CONNECT_PATH = "/connect"
UPLOADS_PREFIX = "/uploads/"


class Kind(enum.Enum):
    """What a client-side request is."""

    PREFLIGHT = "preflight"
    UPLOAD = "upload"
    CONNECT = "connect"
    USER = "user"


KIND = web.RequestKey("stream_client_kind", Kind)
USER = web.RequestKey("stream_user_id", str)
AUTH_ERROR = web.RequestKey("stream_auth_error", Exception)
"""Set instead of :data:`USER` on a ``/connect`` whose token was refused: Stream accepts the
socket and says why on it (so the SDK can see code 40 and refresh its token)."""


def _unverified_claims(token: str) -> dict[str, Any] | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    return claims if isinstance(claims, dict) else None


def is_client_request(request: web.Request) -> bool:
    """Whether ``request`` is for the client-side API (see the module docstring)."""
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return True
    if request.path == CONNECT_PATH:
        return True
    if request.method in ("GET", "HEAD") and request.path.startswith(UPLOADS_PREFIX):
        return True
    if request.headers.get("Stream-Auth-Type", "").lower() != "jwt":
        return False
    claims = _unverified_claims(request.headers.get("Authorization", ""))
    return claims is not None and claims.get("server") is not True


def check_token(double: StreamDouble, token: str) -> str:
    """The user id of a valid user token; Stream's 401 errors (code 40: expired) otherwise."""
    user_id = double.check_user_token(token)
    claims = _unverified_claims(token) or {}
    exp = claims.get("exp")
    state = state_of(double)
    if isinstance(exp, int | float):
        if exp <= state.expired_through:
            raise StreamError(401, 40, "JWTAuth error: token has expired")
        state.latest_token_exp = max(state.latest_token_exp, int(exp))
    return user_id


def authenticate(double: StreamDouble, request: web.Request) -> None:
    """Check a client-side request and note its kind and user on it.

    Raises Stream's errors for REST calls; a ``/connect`` with a bad token is noted instead
    (:data:`AUTH_ERROR`) and answered on the socket.
    """
    if request.method == "OPTIONS":
        request[KIND] = Kind.PREFLIGHT
        return
    if request.path.startswith(UPLOADS_PREFIX):
        request[KIND] = Kind.UPLOAD
        return
    if request.query.get("api_key") != double.api_key:
        raise StreamError(401, 2, "api_key not found")
    if request.path == CONNECT_PATH:
        request[KIND] = Kind.CONNECT
        if request.query.get("stream-auth-type", "").lower() != "jwt":
            raise StreamError(401, 5, "stream-auth-type must be jwt for user connections")
        token = request.query.get("authorization", "")
        try:
            request[USER] = check_token(double, token)
        except StreamError as exc:
            request[AUTH_ERROR] = exc
            user_id = (_unverified_claims(token) or {}).get("user_id")
            state_of(double).refused_connects.append(
                (user_id if isinstance(user_id, str) else None, exc.code)
            )
        return
    request[KIND] = Kind.USER
    user_id = check_token(double, request.headers.get("Authorization", ""))
    claimed = request.query.get("user_id")
    if claimed is not None and claimed != user_id:
        raise StreamError(401, 5, f"user_id {claimed!r} does not match the token's user")
    request[USER] = user_id
