"""CORS for the configured browser origins only.

Allowed origins get ``Access-Control-Allow-Origin: <origin>`` with credentials (the session
cookie) on every response, errors included, so the browser's JavaScript can read a 401 or a
429. Other origins get no CORS header at all, so the browser withholds the response; their
preflights are refused with 403. Every response carries ``Vary: Origin``.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.domain import PermissionDeniedError

ALLOWED_REQUEST_HEADERS = "Authorization, Content-Type"
EXPOSED_HEADERS = "Retry-After"
PREFLIGHT_MAX_AGE_S = 600


class CorsPolicy:
    """Which origins may call the bridge from a browser, with credentials."""

    def __init__(self, origins: Iterable[str]) -> None:
        self._origins = frozenset(o.rstrip("/") for o in origins)

    def allows(self, origin: str | None) -> bool:
        """Whether ``origin`` (the request's ``Origin`` header) is configured."""
        return origin is not None and origin in self._origins

    def decorate(self, request: web.Request, response: web.StreamResponse) -> None:
        """Add ``Vary`` and, for an allowed origin, the CORS headers to ``response``."""
        headers = response.headers
        vary = headers.get("Vary")
        if vary is None:
            headers["Vary"] = "Origin"
        elif vary != "Origin" and "origin" not in vary.lower():
            headers["Vary"] = f"{vary}, Origin"
        origin = request.headers.get("Origin")
        if origin is not None and origin in self._origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
            headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS

    def preflight(self, methods: Iterable[str]) -> Handler:
        """An ``OPTIONS`` handler answering preflights for a resource serving ``methods``."""
        allowed = sorted(set(methods))

        async def handle(request: web.Request) -> web.StreamResponse:
            origin = request.headers.get("Origin")
            requested = request.headers.get("Access-Control-Request-Method")
            if origin is None or requested is None:
                # Not a preflight: OPTIONS is not part of the API.
                raise web.HTTPMethodNotAllowed("OPTIONS", allowed)
            if not self.allows(origin):
                raise PermissionDeniedError(f"origin {origin!r} is not allowed")
            if requested not in allowed:
                raise PermissionDeniedError(f"method {requested!r} is not allowed")
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Methods": ", ".join(allowed),
                    "Access-Control-Allow-Headers": ALLOWED_REQUEST_HEADERS,
                    "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
                },
            )

        return handle
