"""A local HTTP double of the Stream Chat REST endpoints the gateway uses.

The real ``stream-chat`` SDK reaches it through ``STREAM_CHAT_URL`` / ``base_url``. It checks
server-side auth the way Stream does (``api_key`` query parameter; a server JWT in
``Authorization`` with ``Stream-Auth-Type: jwt``, HS256-signed with the app secret; anything
else is a 401 with a Stream-like JSON error body), keeps state (users, channels, members,
channel types, app settings), records every request, and can inject failures: 429 with
``X-RateLimit-*`` headers, 5xx, slow responses and a full outage (nothing listens; open
keep-alive connections are dropped too).

Endpoints: ``POST /users``, ``POST /channels/{type}/{id}/query`` (get or create),
``POST|PATCH /channels/{type}/{id}`` (members, partial update), ``GET|PUT
/channeltypes/{name}``, ``GET|PATCH /app``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["Call", "StreamDouble", "StoredChannel"]

_MORE_INFO = "https://getstream.io/chat/docs/api_errors_response"
RATE_LIMIT = 1000


@dataclass(frozen=True)
class Call:
    """One request the double received (whatever it answered)."""

    method: str
    path: str
    time: float
    status: int
    body: Any


@dataclass
class StoredChannel:
    """A channel as the double holds it."""

    type: str
    id: str
    created_by_id: str
    members: list[str]
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def cid(self) -> str:
        return f"{self.type}:{self.id}"


class StreamError(Exception):
    """A Stream-style API error answer."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _default_channel_type(name: str) -> dict[str, Any]:
    # Stream's built-in messaging type has these on; tests switch them off to test --apply.
    return {
        "name": name,
        "read_events": True,
        "uploads": True,
        "typing_events": True,
        "automod": "disabled",
        "automod_behavior": "flag",
        "max_message_length": 5000,
    }


def _default_upload_config() -> dict[str, Any]:
    # A fresh Stream app allows every type (empty allow-lists).
    return {
        "allowed_file_extensions": [],
        "blocked_file_extensions": [],
        "allowed_mime_types": [],
        "blocked_mime_types": [],
        "size_limit": 0,
    }


class StreamDouble:
    """The double's state, failure switches and HTTP server on 127.0.0.1."""

    def __init__(self, *, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, StoredChannel] = {}
        self.creations: dict[str, int] = {}
        self.channel_types: dict[str, dict[str, Any]] = {
            "messaging": _default_channel_type("messaging")
        }
        self.app: dict[str, Any] = {
            "name": "tradetrust-test",
            "image_upload_config": _default_upload_config(),
            "file_upload_config": _default_upload_config(),
        }
        self.calls: list[Call] = []
        self.requests_seen = 0
        """Requests received, counted on arrival (``calls`` records them once answered)."""
        self.delay_s = 0.0
        """Every answer waits this long (slow Stream)."""
        self.rate_limited_until = 0
        self.remaining_override: int | None = None
        """If set, ``X-RateLimit-Remaining`` on every answer (0: the window is spent)."""
        """Unix time (whole seconds, like Stream's header) until which every call gets 429."""
        self._injected: deque[int] = deque()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL for ``STREAM_CHAT_URL``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def listening(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port first, the same port after an outage)."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/users", self._upsert_users)
        app.router.add_post("/channels/{type}/{id}/query", self._query_channel)
        app.router.add_post("/channels/{type}/{id}", self._update_channel)
        app.router.add_patch("/channels/{type}/{id}", self._update_channel_partial)
        app.router.add_get("/channeltypes/{name}", self._get_channel_type)
        app.router.add_put("/channeltypes/{name}", self._update_channel_type)
        app.router.add_get("/app", self._get_app)
        app.router.add_patch("/app", self._update_app)
        from tests.stream_double import realtime  # (it imports this module)

        realtime.add_routes(app, self)  # the client-side API (browser SDK), see realtime/
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening and drop open connections: a full outage (connection refused)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- switches and queries for tests ------------------------------------------------------

    def inject(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` requests with ``status`` (e.g. 500, 503)."""
        self._injected.extend([status] * count)

    def rate_limit(self, for_s: float) -> int:
        """429 every request until the returned reset time (whole Unix seconds, >= for_s)."""
        self.rate_limited_until = math.ceil(time.time() + for_s)
        return self.rate_limited_until

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    def put_channel(
        self, channel_type: str, channel_id: str, members: list[str], **data: Any
    ) -> StoredChannel:
        """Create or change a channel as if by hand in the dashboard (not recorded)."""
        for uid in members:
            self.users.setdefault(uid, {"id": uid})
        channel = StoredChannel(channel_type, channel_id, "dashboard", list(members), dict(data))
        self.channels[channel.cid] = channel
        return channel

    # -- HTTP plumbing -----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests_seen += 1
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        received = time.time()
        headers = self._rate_headers()
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            self._authenticate(request)
            if time.time() < self.rate_limited_until:
                headers["X-RateLimit-Remaining"] = "0"
                raise StreamError(429, 9, "Too many requests, check response headers")
            if self._injected:
                status = self._injected.popleft()
                raise StreamError(status, -1, f"injected failure {status}")
            response = await handler(request)
        except StreamError as exc:
            response = web.json_response(
                {
                    "code": exc.code,
                    "message": exc.message,
                    "exception_fields": {},
                    "StatusCode": exc.status,
                    "duration": "0.01ms",
                    "more_info": _MORE_INFO,
                    "details": [],
                },
                status=exc.status,
            )
        response.headers.update(headers)
        self.calls.append(Call(request.method, request.path, received, response.status, body))
        return response

    def _rate_headers(self) -> dict[str, str]:
        reset = self.rate_limited_until or int(time.time()) + 60
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(
                RATE_LIMIT - 1 if self.remaining_override is None else self.remaining_override
            ),
            "X-RateLimit-Reset": str(reset),
        }

    def _authenticate(self, request: web.Request) -> None:
        from tests.stream_double import realtime

        if realtime.is_client_request(request):  # a user's token, a preflight, an upload
            realtime.authenticate(self, request)
            return
        if request.query.get("api_key") != self.api_key:
            raise StreamError(401, 2, "api_key not found")
        if request.headers.get("Stream-Auth-Type", "").lower() != "jwt":
            raise StreamError(401, 5, "Stream-Auth-Type header must be jwt for server auth")
        try:
            claims = jwt.decode(
                request.headers.get("Authorization", ""), self.api_secret, algorithms=["HS256"]
            )
        except jwt.InvalidTokenError as exc:
            raise StreamError(401, 5, f"JWTAuth error: signature is not valid: {exc}") from exc
        if claims.get("server") is not True:
            raise StreamError(403, 17, "server-side calls need a server token")

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise StreamError(400, 4, "invalid JSON body") from exc
        if not isinstance(body, dict):
            raise StreamError(400, 4, "body must be a JSON object")
        return body

    # -- endpoints ---------------------------------------------------------------------------

    async def _upsert_users(self, request: web.Request) -> web.Response:
        users = (await self._json(request)).get("users")
        if not isinstance(users, dict) or not users:
            raise StreamError(400, 4, "UpdateUsers failed with error: users is a required field")
        for key, user in users.items():
            if not isinstance(user, dict) or user.get("id") != key:
                raise StreamError(400, 4, f"user {key!r}: id does not match its key")
            self.users[key] = dict(user)
        return web.json_response({"users": users, "duration": "0.01ms"})

    def _member_ids(self, raw: Any) -> list[str]:
        ids = [m if isinstance(m, str) else m.get("user_id") for m in raw or []]
        missing = [uid for uid in ids if uid not in self.users]
        if missing:
            raise StreamError(
                400,
                4,
                "The following users are involved in channel create operation, but don't "
                f"exist: {missing}. Please create the user objects before setting up the channel.",
            )
        return [str(uid) for uid in ids]

    def _channel_json(self, ch: StoredChannel, member_limit: int = 100) -> dict[str, Any]:
        return {
            "channel": {
                **ch.data,
                "id": ch.id,
                "type": ch.type,
                "cid": ch.cid,
                "created_by": self.users.get(ch.created_by_id, {"id": ch.created_by_id}),
                "member_count": len(ch.members),
                "config": self.channel_types.get(ch.type, {}),
            },
            "members": [
                {"user_id": uid, "user": self.users.get(uid, {"id": uid}), "role": "member"}
                for uid in ch.members[:member_limit]
            ],
            "messages": [],
            "duration": "0.01ms",
        }

    def _existing(self, request: web.Request) -> StoredChannel:
        cid = f"{request.match_info['type']}:{request.match_info['id']}"
        channel = self.channels.get(cid)
        if channel is None:
            raise StreamError(404, 16, f"Channel '{cid}' not found")
        return channel

    async def _query_channel(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        ctype, cid_id = request.match_info["type"], request.match_info["id"]
        if ctype not in self.channel_types:
            raise StreamError(404, 16, f"channel type '{ctype}' doesn't exist")
        cid = f"{ctype}:{cid_id}"
        channel = self.channels.get(cid)
        if channel is None:
            data = dict(body.get("data") or {})
            creator = data.pop("created_by_id", None) or (data.pop("created_by", None) or {}).get(
                "id"
            )
            data.pop("created_by", None)
            if not creator:
                raise StreamError(
                    400,
                    4,
                    "GetOrCreateChannel failed with error: either data.created_by or "
                    "data.created_by_id must be provided when using server side auth.",
                )
            members = self._member_ids(data.pop("members", []))
            self._member_ids([creator])
            channel = StoredChannel(ctype, cid_id, creator, members, data)
            self.channels[cid] = channel
            self.creations[cid] = self.creations.get(cid, 0) + 1
        limit = int((body.get("members") or {}).get("limit", 100))
        return web.json_response(self._channel_json(channel, limit))

    async def _update_channel(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        channel = self._existing(request)
        if "add_members" in body:
            for uid in self._member_ids(body["add_members"]):
                if uid not in channel.members:
                    channel.members.append(uid)
        if "remove_members" in body:
            gone = set(body["remove_members"] or [])
            channel.members = [uid for uid in channel.members if uid not in gone]
        if isinstance(body.get("data"), dict):
            channel.data = dict(body["data"])
        return web.json_response(self._channel_json(channel))

    async def _update_channel_partial(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        channel = self._existing(request)
        channel.data.update(body.get("set") or {})
        for key in body.get("unset") or []:
            channel.data.pop(key, None)
        return web.json_response(self._channel_json(channel))

    async def _get_channel_type(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.channel_types:
            raise StreamError(404, 16, f"channel type '{name}' doesn't exist")
        return web.json_response({**self.channel_types[name], "duration": "0.01ms"})

    async def _update_channel_type(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.channel_types:
            raise StreamError(404, 16, f"channel type '{name}' doesn't exist")
        body = await self._json(request)
        # Stream requires these fields on every channel-type update.
        for required in ("automod", "automod_behavior", "max_message_length"):
            if required not in body:
                raise StreamError(400, 4, f"UpdateChannelType failed: {required} is required")
        self.channel_types[name].update(body)
        return web.json_response({**self.channel_types[name], "duration": "0.01ms"})

    async def _get_app(self, request: web.Request) -> web.Response:
        return web.json_response({"app": self.app, "duration": "0.01ms"})

    async def _update_app(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        for key, value in body.items():
            if key.endswith("_upload_config") and isinstance(value, dict):
                self.app[key] = {**self.app.get(key, {}), **value}
            else:
                self.app[key] = value
        return web.json_response({"duration": "0.01ms"})
