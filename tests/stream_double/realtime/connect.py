"""``GET /connect``: the WebSocket every browser client keeps open.

Like Stream, the double accepts the upgrade first and answers on the socket: an error
(``{"error": {"code": 40, ...}}`` for an expired token, then close 1000), or a
``health.check`` carrying the ``connection_id`` and ``me``. It answers the client's
``health.check`` pings, and pushes channel events to the sockets watching the channel.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from tests.stream_double import StreamDouble, StreamError
from tests.stream_double.realtime import shapes
from tests.stream_double.realtime.auth import AUTH_ERROR, USER
from tests.stream_double.realtime.state import Connection, iso_now, state_of

_MORE_INFO = "https://getstream.io/chat/docs/api_errors_response"
WS_CLOSED_SUCCESS = 1000


def _error_event(error: StreamError) -> dict[str, Any]:
    return {
        "error": {
            "code": error.code,
            "message": error.message,
            "StatusCode": error.status,
            "duration": "0.01ms",
            "more_info": _MORE_INFO,
            "details": [],
        }
    }


def _payload_user(request: web.Request, user_id: str) -> dict[str, Any]:
    """The ``json`` query parameter's user, which must be the token's user."""
    try:
        payload = json.loads(request.query.get("json", ""))
    except ValueError as exc:
        raise StreamError(400, 4, "json query parameter is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise StreamError(400, 4, "json query parameter must be an object")
    if payload.get("user_id") != user_id:
        raise StreamError(401, 5, "user_id in the payload does not match the token's user")
    details = payload.get("user_details")
    return details if isinstance(details, dict) else {"id": user_id}


async def _refuse(ws: web.WebSocketResponse, error: StreamError) -> web.WebSocketResponse:
    await ws.send_json(_error_event(error))
    await ws.close(code=WS_CLOSED_SUCCESS, message=error.message[:120].encode())
    return ws


async def connect(double: StreamDouble, request: web.Request) -> web.WebSocketResponse:
    """Serve one client socket until either side closes it."""
    state = state_of(double)
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    refused = request.get(AUTH_ERROR)
    if isinstance(refused, StreamError):
        return await _refuse(ws, refused)
    user_id = request[USER]
    try:
        details = _payload_user(request, user_id)
    except StreamError as exc:
        return await _refuse(ws, exc)
    if user_id not in double.users:
        double.users[user_id] = {**details, "id": user_id}
    connection = Connection(
        id=str(uuid.uuid4()), user_id=user_id, ws=ws, origin=request.headers.get("Origin")
    )
    state.connections.append(connection)
    try:
        await connection.send(
            {
                "type": "health.check",
                "connection_id": connection.id,
                "cid": "*",
                "me": shapes.own_user(double, state, user_id),
                "created_at": iso_now(),
            }
        )
        async for message in ws:
            if message.type is WSMsgType.TEXT and "health.check" in message.data:
                await connection.send(
                    {
                        "type": "health.check",
                        "connection_id": connection.id,
                        "cid": "*",
                        "created_at": iso_now(),
                    }
                )
    finally:
        connection.closed_at = time.time()
        if connection.close_code is None:  # (close_all notes its own code first)
            connection.close_code = ws.close_code
    return ws
