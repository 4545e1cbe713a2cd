"""The client-side REST endpoints: a user acting in the channels they are a member of.

``POST /channels/{type}/{id}/query`` (state, watch), ``POST /channels`` (query channels, as
the SDK does when it recovers after a reconnect), ``POST .../message``, ``POST .../image``,
``POST .../read``, ``POST .../event`` (typing), ``POST .../stop-watching`` and ``GET /app``.
Answers and errors are shaped like Stream's; events go out on the watchers' sockets.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.stream_double import StoredChannel, StreamDouble, StreamError
from tests.stream_double.realtime import shapes
from tests.stream_double.realtime.auth import USER
from tests.stream_double.realtime.state import Read, RealtimeState, iso_now, state_of
from tests.stream_double.realtime.uploads import upload_image

__all__ = ["Api", "ROUTES", "Route"]

MAX_MESSAGE_LIMIT = 300
MAX_ID_LENGTH = 255
_TYPING = {"typing.start", "typing.stop"}


@dataclass(frozen=True)
class Api:
    """The double a request acts on, and its client-side state."""

    double: StreamDouble

    @property
    def state(self) -> RealtimeState:
        return state_of(self.double)


Handler = Callable[[Api, web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler


def _ok(body: dict[str, Any]) -> web.Response:
    return web.json_response({**body, "duration": "0.01ms"})


async def body_of(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object (``{}`` for an empty optional body)."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise StreamError(400, 4, "request body is required")
        return {}
    try:
        body = await request.json()
    except ValueError as exc:
        raise StreamError(400, 4, "invalid JSON body") from exc
    if not isinstance(body, dict):
        raise StreamError(400, 4, "body must be a JSON object")
    return body


def _denied(action: str, user_id: str, permission: str, scope: str) -> StreamError:
    return StreamError(
        403,
        17,
        f"{action} failed with error: \"User '{user_id}' with role 'user' is not allowed "
        f"to perform action {permission} in scope '{scope}'\"",
    )


def member_channel(
    api: Api, request: web.Request, params: dict[str, str], action: str, permission: str
) -> tuple[StoredChannel, str]:
    """The channel of the URL and the request's user, who must be one of its members."""
    user_id = request[USER]
    cid = f"{params['type']}:{params['id']}"
    channel = api.double.channels.get(cid)
    if channel is None:
        if action == "GetOrCreateChannel":
            # TradeTrust's app lets only the gateway (server side) create order channels.
            raise _denied(action, user_id, "CreateChannel", params["type"])
        raise StreamError(404, 16, f'{action} failed with error: "channel {cid} does not exist"')
    if user_id not in channel.members:
        raise _denied(action, user_id, permission, params["type"])
    return channel, user_id


def _limit(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MESSAGE_LIMIT:
        raise StreamError(400, 4, f"{name} must be an integer between 0 and {MAX_MESSAGE_LIMIT}")
    return value


def _watch(api: Api, request: web.Request, user_id: str, cid: str) -> None:
    connection_id = request.query.get("connection_id")
    connection = next(
        (c for c in api.state.open_connections(user_id) if c.id == connection_id), None
    )
    if connection is None:
        raise StreamError(
            400, 4, "watch requires the connection_id of an open connection of this user"
        )
    connection.watching.add(cid)


async def query_channel(
    api: Api, request: web.Request, params: dict[str, str]
) -> web.StreamResponse:
    body = await body_of(request)
    channel, user_id = member_channel(api, request, params, "GetOrCreateChannel", "ReadChannel")
    messages = body.get("messages")
    if messages is not None and not isinstance(messages, dict):
        raise StreamError(400, 4, "messages must be an object")
    limit = _limit((messages or {}).get("limit"), "messages.limit", 25)
    if body.get("watch") is True:
        _watch(api, request, user_id, channel.cid)
    return _ok(shapes.channel_state(api.double, api.state, channel, user_id, message_limit=limit))


def _matches(channel: StoredChannel, filters: dict[str, Any]) -> bool:
    for key, condition in filters.items():
        value = {"cid": channel.cid, "type": channel.type, "id": channel.id}.get(key)
        if key == "members":
            wanted = condition.get("$in") if isinstance(condition, dict) else [condition]
            if not isinstance(wanted, list) or not set(wanted) & set(channel.members):
                return False
        elif key in ("cid", "type", "id"):
            if isinstance(condition, dict):
                if set(condition) != {"$in"} or not isinstance(condition["$in"], list):
                    raise StreamError(400, 4, f"QueryChannels: unsupported filter on {key}")
                if value not in condition["$in"]:
                    return False
            elif value != condition:
                return False
        else:
            raise StreamError(400, 4, f"QueryChannels: unsupported filter field {key!r}")
    return True


async def query_channels(
    api: Api, request: web.Request, params: dict[str, str]
) -> web.StreamResponse:
    body = await body_of(request)
    user_id = request[USER]
    filters = body.get("filter_conditions") or {}
    if not isinstance(filters, dict):
        raise StreamError(400, 4, "filter_conditions must be an object")
    limit = _limit(body.get("limit"), "limit", 10)
    message_limit = _limit(body.get("message_limit"), "message_limit", 25)
    found = [
        c for c in api.double.channels.values() if user_id in c.members and _matches(c, filters)
    ][:limit]
    for channel in found:
        if body.get("watch") is True:
            _watch(api, request, user_id, channel.cid)
    return _ok(
        {
            "channels": [
                shapes.channel_state(api.double, api.state, c, user_id, message_limit=message_limit)
                for c in found
            ]
        }
    )


def _new_message(api: Api, channel: StoredChannel, user_id: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise StreamError(400, 4, 'SendMessage failed with error: "message is a required field"')
    text = raw.get("text", "")
    attachments = raw.get("attachments", [])
    message_id = raw.get("id") or f"{user_id}-{uuid.uuid4()}"
    if not isinstance(text, str):
        raise StreamError(400, 4, 'SendMessage failed with error: "message.text must be a string"')
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise StreamError(400, 4, 'SendMessage failed with error: "attachments must be objects"')
    if not isinstance(message_id, str) or len(message_id) > MAX_ID_LENGTH:
        raise StreamError(400, 4, 'SendMessage failed with error: "message.id is not valid"')
    if not text.strip() and not attachments:
        raise StreamError(
            400, 4, 'SendMessage failed with error: "message text or attachments are required"'
        )
    limit = int(api.double.channel_types.get(channel.type, {}).get("max_message_length", 5000))
    if len(text) > limit:
        raise StreamError(
            400, 4, f'SendMessage failed with error: "message is too long (max {limit})"'
        )
    log = api.state.log(channel.cid)
    if any(m["id"] == message_id for m in log.messages):
        raise StreamError(
            400,
            4,
            f'SendMessage failed with error: "a message with ID {message_id} already exists"',
        )
    now = iso_now()
    return {
        "id": message_id,
        "text": text,
        "html": f"<p>{html.escape(text)}</p>\n" if text else "",
        "type": "regular",
        "user": shapes.user(api.double, user_id),
        "attachments": attachments,
        "latest_reactions": [],
        "own_reactions": [],
        "reaction_counts": {},
        "reaction_scores": {},
        "reply_count": 0,
        "deleted_reply_count": 0,
        "cid": channel.cid,
        "created_at": now,
        "updated_at": now,
        "shadowed": False,
        "mentioned_users": [],
        "silent": False,
        "pinned": False,
        "pinned_at": None,
        "pinned_by": None,
        "pin_expires": None,
        "restricted_visibility": [],
    }


async def send_message(
    api: Api, request: web.Request, params: dict[str, str]
) -> web.StreamResponse:
    body = await body_of(request)
    channel, user_id = member_channel(api, request, params, "SendMessage", "CreateMessage")
    if shapes.frozen(channel):
        raise _denied("SendMessage", user_id, "CreateMessage", channel.type)
    message = _new_message(api, channel, user_id, body.get("message"))
    log = api.state.log(channel.cid)
    log.messages.append(message)
    # The sender has read their own message.
    log.reads[user_id] = Read(message["created_at"], message["id"])
    watchers = api.state.watchers(channel.cid)
    for connection in watchers:
        unread = log.unread_for(connection.user_id)
        await connection.send(
            shapes.event(
                "message.new",
                channel,
                message=message,
                message_id=message["id"],
                user=message["user"],
                watcher_count=len({c.user_id for c in watchers}),
                channel_last_message_at=message["created_at"],
                unread_count=unread,
                total_unread_count=unread,
                unread_channels=1 if unread else 0,
            )
        )
    return _ok({"message": message})


async def send_image(api: Api, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
    channel, user_id = member_channel(api, request, params, "UploadImage", "UploadAttachment")
    if shapes.frozen(channel) or not api.double.channel_types.get(channel.type, {}).get("uploads"):
        raise _denied("UploadImage", user_id, "UploadAttachment", channel.type)
    url = await upload_image(api.double, api.state, request, user_id)
    return _ok({"file": url, "thumb_url": url})


async def mark_read(api: Api, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
    body = await body_of(request, required=False)
    channel, user_id = member_channel(api, request, params, "MarkRead", "ReadChannel")
    log = api.state.log(channel.cid)
    message_id = body.get("message_id")
    if message_id is not None and not any(m["id"] == message_id for m in log.messages):
        raise StreamError(400, 4, f'MarkRead failed with error: "message {message_id} not found"')
    if message_id is None and log.messages:
        message_id = log.messages[-1]["id"]
    read = log.reads[user_id] = Read(iso_now(), message_id)
    event = shapes.event(
        "message.read",
        channel,
        user=shapes.user(api.double, user_id),
        last_read_message_id=read.last_read_message_id,
        created_at=read.last_read,
    )
    for connection in api.state.watchers(channel.cid):
        await connection.send(event)
    return _ok({"event": event})


async def send_event(api: Api, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
    body = await body_of(request)
    channel, user_id = member_channel(api, request, params, "SendEvent", "SendCustomEvent")
    raw = body.get("event")
    if not isinstance(raw, dict) or raw.get("type") not in _TYPING:
        raise StreamError(
            400, 4, 'SendEvent failed with error: "event.type must be a typing event"'
        )
    if shapes.frozen(channel):
        raise _denied("SendEvent", user_id, "SendTypingEvent", channel.type)
    event = shapes.event(raw["type"], channel, user=shapes.user(api.double, user_id))
    if isinstance(raw.get("parent_id"), str):
        event["parent_id"] = raw["parent_id"]
    for connection in api.state.watchers(channel.cid):
        await connection.send(event)
    return _ok({"event": event})


async def stop_watching(
    api: Api, request: web.Request, params: dict[str, str]
) -> web.StreamResponse:
    await body_of(request, required=False)
    channel, user_id = member_channel(api, request, params, "StopWatching", "ReadChannel")
    for connection in api.state.open_connections(user_id):
        if connection.id == request.query.get("connection_id"):
            connection.watching.discard(channel.cid)
    return _ok({})


async def get_app(api: Api, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
    app = api.double.app
    public = {
        key: app[key] for key in ("name", "image_upload_config", "file_upload_config") if key in app
    }
    return _ok({"app": {**public, "async_url_enrich_enabled": False}})


_CHANNEL = r"/channels/(?P<type>[A-Za-z0-9_-]+)/(?P<id>[A-Za-z0-9@!_-]+)"
ROUTES = (
    Route("POST", _CHANNEL + "/query", query_channel),
    Route("POST", _CHANNEL + "/message", send_message),
    Route("POST", _CHANNEL + "/image", send_image),
    Route("POST", _CHANNEL + "/read", mark_read),
    Route("POST", _CHANNEL + "/event", send_event),
    Route("POST", _CHANNEL + "/stop-watching", stop_watching),
    Route("POST", "/channels", query_channels),
    Route("GET", "/app", get_app),
)
