"""The client-side Stream API of the double: what the browser SDK (``stream-chat``) uses.

Requests authenticated as a user (a user token with ``Stream-Auth-Type: jwt``, or the
WebSocket's ``authorization`` parameter), CORS preflights and uploaded files are the client
side's (:func:`is_client_request`; the double's ``_authenticate`` hands them to
:func:`authenticate`). They are served by this package's own routes
(:data:`~tests.stream_double.realtime.endpoints.ROUTES` and ``GET /connect``), never by the
server-side ones, whatever the path: a user may only do what a user may do.

- ``GET /connect``: the WebSocket (``health.check`` with ``connection_id`` and ``me``;
  error code 40 on the socket for an expired token);
- channel query/watch, query channels, messages (``message.new`` pushed to the watchers),
  image upload, ``message.read``, typing events, ``GET /app``; see ``endpoints``;
- CORS for the origins in :attr:`RealtimeState.cors_origins`.

Tests reach the state (sockets opened and closed, messages, reads) with :func:`state_of`.
"""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.stream_double import StreamDouble, StreamError
from tests.stream_double.realtime import cors
from tests.stream_double.realtime.auth import KIND, Kind, authenticate, is_client_request
from tests.stream_double.realtime.connect import connect
from tests.stream_double.realtime.endpoints import ROUTES, Api
from tests.stream_double.realtime.state import Connection, RealtimeState, state_of
from tests.stream_double.realtime.uploads import serve_upload

__all__ = [
    "Connection",
    "RealtimeState",
    "add_routes",
    "authenticate",
    "is_client_request",
    "state_of",
]

GOING_AWAY = 1001
_COMPILED = tuple((route, re.compile(route.pattern)) for route in ROUTES)


async def _dispatch(api: Api, request: web.Request) -> web.StreamResponse:
    kind = request[KIND]
    if kind is Kind.PREFLIGHT:
        return cors.preflight(api.state, request)
    if kind is Kind.UPLOAD:
        return serve_upload(api.state, request)
    if kind is Kind.CONNECT:
        return await connect(api.double, request)
    for route, pattern in _COMPILED:
        match = pattern.fullmatch(request.path)
        if match is not None and route.method == request.method:
            return await route.handler(api, request, match.groupdict())
    raise StreamError(
        404, 16, f"{request.method} {request.path} is not an endpoint of the client-side API"
    )


def add_routes(app: web.Application, double: StreamDouble) -> None:
    """Serve the client-side API on ``app`` (the double's application, before it starts).

    Runs inside the double's own middleware, so requests are counted, recorded, delayed and
    failed like every other, and authenticated first.
    """
    api = Api(double)
    state = state_of(double)

    @web.middleware
    async def client_side(request: web.Request, handler: Handler) -> web.StreamResponse:
        if KIND not in request:
            return await handler(request)  # the server-side API
        return await _dispatch(api, request)

    async def add_cors(request: web.Request, response: web.StreamResponse) -> None:
        cors.decorate(state, request, response)

    async def close_sockets(app: web.Application) -> None:
        await state.close_all(GOING_AWAY)

    app.middlewares.append(client_side)
    app.on_response_prepare.append(add_cors)
    app.on_shutdown.append(close_sockets)
