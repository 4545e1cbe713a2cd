"""CORS for the browser pages allowed to call the double (the test page's origin).

The SDK sends its token in headers, never cookies, so answers carry no
``Access-Control-Allow-Credentials``. Preflights get the methods and the headers the browser
asked for; an origin that is not allowed gets a Stream error and no CORS headers, so the
browser blocks the call.
"""

from __future__ import annotations

from aiohttp import web

from tests.stream_double import StreamError
from tests.stream_double.realtime.state import RealtimeState

__all__ = ["decorate", "preflight"]

_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
_EXPOSED = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
_MAX_AGE_S = "600"


def decorate(state: RealtimeState, request: web.Request, response: web.StreamResponse) -> None:
    """Add the CORS headers for an allowed ``Origin`` (errors included, so the SDK can read
    a 401 with code 40)."""
    origin = request.headers.get("Origin")
    response.headers["Vary"] = "Origin"
    if origin is not None and origin in state.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _EXPOSED


def preflight(state: RealtimeState, request: web.Request) -> web.Response:
    origin = request.headers.get("Origin")
    if origin is None or origin not in state.cors_origins:
        raise StreamError(403, 17, f"origin {origin!r} is not allowed")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": _METHODS,
            "Access-Control-Allow-Headers": request.headers.get(
                "Access-Control-Request-Headers", ""
            ),
            "Access-Control-Max-Age": _MAX_AGE_S,
        },
    )
