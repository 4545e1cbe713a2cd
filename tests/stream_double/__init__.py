"""A local HTTP double of the Stream Chat REST endpoints the gateway uses.

The real ``stream-chat`` SDK reaches it through ``STREAM_CHAT_URL`` / ``base_url``. It checks
server-side auth the way Stream does (``api_key`` query parameter; a server JWT in
``Authorization`` with ``Stream-Auth-Type: jwt``, HS256-signed with the app secret; anything
else is a 401 with a Stream-like JSON error body), keeps state (users, channels, members and
their channel roles, channel types, app settings), records every request in ``calls``, and
can inject failures.

Endpoints, each with its *call kind* (used by ``calls_of`` and the fault switches):

====== ============================== ======================= ==============================
method path                           kind                    SDK call
====== ============================== ======================= ==============================
POST   /users                         upsert_users            ``upsert_users``
PATCH  /users                         update_users_partial    ``update_users_partial``,
                                                              ``revoke_user(s)_token``
GET    /users?payload=...             query_users             ``query_users``
POST   /channels                      query_channels          ``query_channels``
POST   /channels/{type}/{id}/query    query_channel           ``channel.create/query``
POST   /channels/{type}/{id}          update_channel          ``update``, ``add_members``,
                                                              ``remove_members``,
                                                              ``assign_roles``,
                                                              ``add/demote_moderators``
PATCH  /channels/{type}/{id}          update_channel_partial  ``update_partial``
GET    /channeltypes/{name}           get_channel_type        ``get_channel_type``
PUT    /channeltypes/{name}           update_channel_type     ``update_channel_type``
GET    /app                           get_app                 ``get_app_settings``
PATCH  /app                           update_app              ``update_app_settings``
====== ============================== ======================= ==============================

Fault switches (they combine; a *scope* is ``method=`` and/or ``path=``, where ``path`` is a
pattern such as ``/channels/*/*`` with ``*`` matching one path segment, or a call kind):

* ``inject(status, count=1, *, method=None, path=None)``: the next ``count`` requests in
  scope are answered ``status`` with a Stream error body (code 4 for 400, 5 for 401, 17 for
  403, 16 for 404, 9 for 429, -1 for 5xx). Queued injections are used up in order.
* ``delay_s``: every answer waits this long (slow Stream).
* ``delay_for(path, seconds, *, method=None)``: requests in scope also wait ``seconds`` (0
  clears it); with several matching, the longest applies.
* ``rate_limit(for_s, *, method=None, path=None) -> reset``: every request in scope gets 429
  (code 9, ``X-RateLimit-Remaining: 0``, ``X-RateLimit-Reset: reset``) until ``reset``.
  Stream's limits are per endpoint, so a scoped limit is the realistic one; the unscoped
  form (``rate_limited_until``) limits the whole app.
* ``remaining_override``: ``X-RateLimit-Remaining`` on every answer (0: the window is spent).
* ``await stop()`` / ``await start()``: full outage (connection refused, open keep-alive
  connections dropped), then back on the same port.
* ``clear_faults()``: every switch above back to normal (the double keeps listening).

They apply in this order: delay, auth, rate limit, injected status, then the endpoint.

Time: ``clock`` (default ``time.time``) stamps ``created_at``/``updated_at`` and is "now"
for ``check_user_token``; shift it to test expiry. Rate-limit windows, ``X-RateLimit-Reset``
and ``Call.time`` stay on the wall clock, which is what the gateway compares them with.

Query behaviour (``query_channels``, ``query_users``) is documented in ``filters.py``;
user-token checks (``check_user_token``) in ``tokens.py``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.stream_double.faults import Injection, Scope, take_injection
from tests.stream_double.filters import (
    COMPARISONS,
    FieldSpec,
    FilterError,
    compile_filter,
    parse_sort,
    sort_documents,
)
from tests.stream_double.model import (
    BUILTIN_CHANNEL_ROLES,
    CHANNEL_MEMBER,
    CHANNEL_MODERATOR,
    Call,
    StoredChannel,
    StreamError,
    format_time,
    input_error,
    parse_time,
    set_path,
    unset_path,
)
from tests.stream_double.tokens import verify_user_token

__all__ = ["Call", "StreamDouble", "StoredChannel", "StreamError"]

_MORE_INFO = "https://getstream.io/chat/docs/api_errors_response"
_DURATION = "0.01ms"
RATE_LIMIT = 1000
REVOKE = "revoke_tokens_issued_before"

# Stream error codes for the HTTP statuses tests inject (docs: api_errors_response).
_CODES = {400: 4, 401: 5, 403: 17, 404: 16, 408: 23, 413: 22, 429: 9}

# Channel fields a full update or a partial update cannot set as custom data.
_CHANNEL_RESERVED = frozenset(
    {"id", "type", "cid", "created_by", "created_by_id", "created_at", "updated_at"}
    | {"member_count", "members", "config"}
)
# Channel-update body keys the double understands; anything else is refused (not modelled).
_UPDATE_KEYS = frozenset(
    {"data", "message", "add_members", "remove_members", "add_moderators"}
    | {"demote_moderators", "assign_roles", "hide_history", "hide_history_before"}
    | {"skip_push", "user_id", "user"}
)

_EQ_IN = frozenset({"$eq", "$in"})
_RANGE = COMPARISONS | {"$eq"}
CHANNEL_FIELDS = FieldSpec(
    # Operators per built-in field as in Stream's query_channels docs; the double keeps no
    # messages, so last_message_at never exists and last_updated equals created_at.
    builtin={
        "type": _EQ_IN,
        "id": _EQ_IN,
        "cid": _EQ_IN,
        "members": _EQ_IN,
        "frozen": frozenset({"$eq"}),
        "disabled": frozenset({"$eq"}),
        "created_by_id": frozenset({"$eq"}),
        "member_count": _RANGE,
        "created_at": _RANGE | {"$exists"},
        "updated_at": _RANGE,
        "last_updated": _RANGE,
        "last_message_at": _RANGE | {"$exists"},
    },
    times=frozenset({"created_at", "updated_at", "last_updated", "last_message_at"}),
    unmodelled=frozenset(
        {"invite", "joined", "muted", "hidden", "member.user.name", "team", "has_unread"}
        | {"app_banned", "pinned", "archived"}
    ),
    sortable=frozenset({"created_at", "updated_at", "last_updated", "cid", "id", "member_count"}),
    # Stream's default is last_updated descending: newest first when there are no messages.
    default_sort=(("last_updated", -1),),
)
USER_FIELDS = FieldSpec(
    builtin={"id": _EQ_IN, "role": _EQ_IN, "banned": frozenset({"$eq"})},
    unmodelled=frozenset({"last_active", "online", "teams"}),
    sortable=frozenset({"id"}),
    default_sort=(("id", 1),),
)


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
        """Stored users by id: what was upserted, plus ``revoke_tokens_issued_before``."""
        self.channels: dict[str, StoredChannel] = {}
        self.creations: dict[str, int] = {}
        self.channel_types: dict[str, dict[str, Any]] = {
            "messaging": _default_channel_type("messaging")
        }
        self.channel_roles: set[str] = set(BUILTIN_CHANNEL_ROLES)
        """Channel roles members may have; add custom ones as if created in the dashboard."""
        self.app: dict[str, Any] = {
            "name": "tradetrust-test",
            "image_upload_config": _default_upload_config(),
            "file_upload_config": _default_upload_config(),
        }
        self.clock: Callable[[], float] = time.time
        """Unix time for stored timestamps and token checks (shift it to test expiry)."""
        self.calls: list[Call] = []
        self.requests_seen = 0
        """Requests received, counted on arrival (``calls`` records them once answered)."""
        self.delay_s = 0.0
        """Every answer waits this long (slow Stream)."""
        self.rate_limited_until = 0
        """Unix time (whole seconds, like Stream's header) until which every call gets 429."""
        self.remaining_override: int | None = None
        """If set, ``X-RateLimit-Remaining`` on every answer (0: the window is spent)."""
        self.kinds: frozenset[str] = frozenset()
        """The call kinds the double serves (known once started)."""
        self._injected: list[Injection] = []
        self._delays: dict[Scope, float] = {}
        self._limits: list[tuple[Scope, int]] = []
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
        app.router.add_post("/users", self._upsert_users, name="upsert_users")
        app.router.add_patch("/users", self._update_users_partial, name="update_users_partial")
        app.router.add_get("/users", self._query_users, name="query_users")
        app.router.add_post("/channels", self._query_channels, name="query_channels")
        app.router.add_post(
            "/channels/{type}/{id}/query", self._query_channel, name="query_channel"
        )
        app.router.add_post("/channels/{type}/{id}", self._update_channel, name="update_channel")
        app.router.add_patch(
            "/channels/{type}/{id}", self._update_channel_partial, name="update_channel_partial"
        )
        app.router.add_get("/channeltypes/{name}", self._get_channel_type, name="get_channel_type")
        app.router.add_put(
            "/channeltypes/{name}", self._update_channel_type, name="update_channel_type"
        )
        app.router.add_get("/app", self._get_app, name="get_app")
        app.router.add_patch("/app", self._update_app, name="update_app")
        self.kinds = frozenset(app.router.named_resources())
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

    def inject(
        self, status: int, count: int = 1, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Answer the next ``count`` requests in scope with ``status`` (e.g. 500, 503).

        ``path`` is a call kind (``"query_channels"``) or a pattern (``"/channels/*/*"``, one
        segment per ``*``); an unknown kind is a ``ValueError`` so a typo cannot scope a
        failure to nothing.
        """
        self._injected.append(Injection(status, count, self._scope(method, path)))

    def delay_for(self, path: str, seconds: float, *, method: str | None = None) -> None:
        """Requests in scope (a call kind or path pattern) wait ``seconds`` more; 0 clears."""
        scope = self._scope(method, path)
        if seconds > 0:
            self._delays[scope] = seconds
        else:
            self._delays.pop(scope, None)

    def rate_limit(
        self, for_s: float, *, method: str | None = None, path: str | None = None
    ) -> int:
        """429 every request in scope until the returned reset time (whole Unix seconds)."""
        until = math.ceil(time.time() + for_s)
        if method is None and path is None:
            self.rate_limited_until = until
        else:
            self._limits.append((self._scope(method, path), until))
        return until

    def clear_faults(self) -> None:
        """Every fault switch back to normal: injections, delays, rate limits, overrides."""
        self._injected.clear()
        self._delays.clear()
        self._limits.clear()
        self.delay_s = 0.0
        self.rate_limited_until = 0
        self.remaining_override = None

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    def calls_of(self, kind: str) -> list[Call]:
        """Recorded calls of one kind (``"query_channels"``...), whatever their status."""
        return [c for c in self.calls if c.kind == kind]

    def now(self) -> datetime:
        """The double's clock as an aware UTC datetime."""
        return datetime.fromtimestamp(self.clock(), UTC)

    def put_channel(
        self, channel_type: str, channel_id: str, members: list[str], **data: Any
    ) -> StoredChannel:
        """Create or change a channel as if by hand in the dashboard (not recorded).

        ``frozen=True`` freezes it; other keyword arguments are its custom data.
        """
        for uid in members:
            self.users.setdefault(uid, {"id": uid})
        frozen = bool(data.pop("frozen", False))
        now = self.now()
        previous = self.channels.get(f"{channel_type}:{channel_id}")
        channel = StoredChannel(
            channel_type,
            channel_id,
            "dashboard",
            list(members),
            dict(data),
            frozen=frozen,
            created_at=previous.created_at if previous else now,
            updated_at=now,
        )
        self.channels[channel.cid] = channel
        return channel

    def revoked_before(self, user_id: str) -> datetime | None:
        """The user's ``revoke_tokens_issued_before`` (UTC), or None if never set or unset."""
        value = self.users.get(user_id, {}).get(REVOKE)
        return None if value is None else parse_time(value)

    def check_user_token(self, token: str) -> str:
        """The user id of a client-side (user) token Stream would accept now, else StreamError.

        HS256 with the app secret and a ``user_id`` claim; ``exp``, ``iat`` and ``nbf`` are
        checked against ``clock`` in whole seconds; the user's and the app's
        ``revoke_tokens_issued_before`` revoke tokens issued before that second (a token
        issued in the same second as the cutoff stays valid). Codes and the reasoning are in
        ``tests/stream_double/tokens.py``.
        """
        return verify_user_token(
            token,
            api_key=self.api_key,
            api_secret=self.api_secret,
            now=self.clock(),
            revoked_before=lambda user_id: [
                cutoff
                for cutoff in (self.revoked_before(user_id), self._app_revoked_before())
                if cutoff is not None
            ],
        )

    def _app_revoked_before(self) -> datetime | None:
        value = self.app.get(REVOKE)
        return None if value is None else parse_time(value)

    def _scope(self, method: str | None, path: str | None) -> Scope:
        if path is not None and not path.startswith("/") and self.kinds and path not in self.kinds:
            raise ValueError(f"unknown call kind {path!r}; the double serves {sorted(self.kinds)}")
        return Scope(method.upper() if method else None, path)

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
        method, path = request.method, request.path
        kind = request.match_info.route.name or ""
        limited_until = self._limited_until(method, path, kind)
        headers = self._rate_headers(limited_until)
        try:
            delay = self.delay_s + self._delay(method, path, kind)
            if delay:
                await asyncio.sleep(delay)
            self._authenticate(request)
            if time.time() < limited_until:
                headers["X-RateLimit-Remaining"] = "0"
                raise StreamError(429, 9, "Too many requests, check response headers")
            status = take_injection(self._injected, method, path, kind)
            if status is not None:
                if status == 429:
                    headers["X-RateLimit-Remaining"] = "0"
                code = _CODES.get(status, -1 if status >= 500 else 4)
                raise StreamError(status, code, f"injected failure {status}")
            response = await handler(request)
        except web.HTTPException as exc:  # no such endpoint or method
            response = self._error_response(
                StreamError(exc.status, 16 if exc.status == 404 else 4, exc.reason)
            )
        except StreamError as exc:
            response = self._error_response(exc)
        response.headers.update(headers)
        params = {k: v for k, v in request.query.items() if k != "api_key"}
        self.calls.append(Call(method, path, received, response.status, body, kind, params))
        return response

    def _limited_until(self, method: str, path: str, kind: str) -> int:
        scoped = [until for scope, until in self._limits if scope.matches(method, path, kind)]
        return max([self.rate_limited_until, *scoped])

    def _delay(self, method: str, path: str, kind: str) -> float:
        matching = [s for scope, s in self._delays.items() if scope.matches(method, path, kind)]
        return max(matching, default=0.0)

    def _rate_headers(self, limited_until: int) -> dict[str, str]:
        reset = limited_until or int(time.time()) + 60
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(
                RATE_LIMIT - 1 if self.remaining_override is None else self.remaining_override
            ),
            "X-RateLimit-Reset": str(reset),
        }

    @staticmethod
    def _error_response(exc: StreamError) -> web.Response:
        return web.json_response(
            {
                "code": exc.code,
                "message": exc.message,
                "exception_fields": {},
                "StatusCode": exc.status,
                "duration": _DURATION,
                "more_info": _MORE_INFO,
                "details": [],
            },
            status=exc.status,
        )

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

    @staticmethod
    def _payload(request: web.Request, op: str) -> dict[str, Any]:
        """The ``payload`` query parameter of a GET query endpoint, as a JSON object."""
        try:
            payload = json.loads(request.query.get("payload", ""))
        except ValueError as exc:
            raise input_error(f"{op} failed with error: payload must be a JSON object") from exc
        if not isinstance(payload, dict):
            raise input_error(f"{op} failed with error: payload must be a JSON object")
        return payload

    @staticmethod
    def _int_option(body: dict[str, Any], name: str, *, default: int, maximum: int, op: str) -> int:
        """An integer paging option; absent or 0 means the default (as in Stream's API).

        Above ``maximum`` is refused rather than clamped: we could not confirm which of the
        two Stream does, and a refusal cannot hide a gateway asking for too much.
        """
        value = body.get(name) or default
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise input_error(f'{op} failed with error: "{name} must be a non-negative integer"')
        if value > maximum:
            raise input_error(f'{op} failed with error: "{name} must be at most {maximum}"')
        return value

    # -- JSON shapes -------------------------------------------------------------------------

    def _user_json(self, user_id: str) -> dict[str, Any]:
        return {"id": user_id, "role": "user", **self.users.get(user_id, {})}

    def _member_json(self, channel: StoredChannel, user_id: str) -> dict[str, Any]:
        """A member as Stream shows it: ``channel_role`` and the older ``role``.

        ``role`` is ``moderator`` for channel moderators, ``owner`` for the channel's
        creator, else ``member``; ``is_moderator`` is present (true) only for moderators.
        """
        channel_role = channel.role_of(user_id)
        if channel_role == CHANNEL_MODERATOR:
            role = "moderator"
        elif user_id == channel.created_by_id:
            role = "owner"
        else:
            role = "member"
        member: dict[str, Any] = {
            "user_id": user_id,
            "user": self._user_json(user_id),
            "channel_role": channel_role,
            "role": role,
            "banned": False,
            "shadow_banned": False,
        }
        if channel_role == CHANNEL_MODERATOR:
            member["is_moderator"] = True
        return member

    def _channel_state(self, ch: StoredChannel, member_limit: int = 100) -> dict[str, Any]:
        """One channel's state as in ``query`` and ``query_channels`` answers."""
        return {
            "channel": {
                **ch.data,
                "id": ch.id,
                "type": ch.type,
                "cid": ch.cid,
                "created_by": self._user_json(ch.created_by_id),
                "frozen": ch.frozen,
                "member_count": len(ch.members),
                "created_at": format_time(ch.created_at),
                "updated_at": format_time(ch.updated_at),
                "config": self.channel_types.get(ch.type, {}),
            },
            "members": [self._member_json(ch, uid) for uid in ch.members[:member_limit]],
            "messages": [],
            "pinned_messages": [],
            "read": [],
            "watcher_count": 0,
        }

    def _channel_json(self, ch: StoredChannel, member_limit: int = 100) -> dict[str, Any]:
        return {**self._channel_state(ch, member_limit), "duration": _DURATION}

    @staticmethod
    def _channel_doc(ch: StoredChannel) -> dict[str, Any]:
        """The fields ``query_channels`` filters and sorts on (built-ins over custom data)."""
        return {
            **ch.data,
            "type": ch.type,
            "id": ch.id,
            "cid": ch.cid,
            "members": frozenset(ch.members),
            "frozen": ch.frozen,
            "disabled": False,
            "created_by_id": ch.created_by_id,
            "member_count": len(ch.members),
            "created_at": ch.created_at,
            "updated_at": ch.updated_at,
            "last_updated": ch.created_at,
        }

    # -- users -------------------------------------------------------------------------------

    @staticmethod
    def _revoke_value(value: Any, op: str) -> str | None:
        """``revoke_tokens_issued_before`` normalised to RFC 3339 UTC (None clears it)."""
        if value is None:
            return None
        try:
            return format_time(parse_time(value))
        except ValueError as exc:
            raise input_error(f'{op} failed with error: "{REVOKE}: {exc}"') from exc

    async def _upsert_users(self, request: web.Request) -> web.Response:
        """Create or replace users; ``revoke_tokens_issued_before`` survives unless given."""
        users = (await self._json(request)).get("users")
        if not isinstance(users, dict) or not users:
            raise StreamError(400, 4, "UpdateUsers failed with error: users is a required field")
        if len(users) > 100:
            raise input_error("UpdateUsers failed with error: at most 100 users per request")
        staged: dict[str, dict[str, Any]] = {}
        for key, user in users.items():
            if not isinstance(user, dict) or user.get("id") != key:
                raise StreamError(400, 4, f"user {key!r}: id does not match its key")
            stored = {k: v for k, v in user.items() if k != REVOKE}
            if REVOKE in user:
                revoke = self._revoke_value(user[REVOKE], "UpdateUsers")
            else:
                revoke = self.users.get(key, {}).get(REVOKE)
            if revoke is not None:
                stored[REVOKE] = revoke
            staged[key] = stored
        self.users.update(staged)
        return web.json_response(
            {"users": {key: self._user_json(key) for key in staged}, "duration": _DURATION}
        )

    async def _update_users_partial(self, request: web.Request) -> web.Response:
        """``{"users": [{"id", "set", "unset"}]}``; dotted keys reach into nested objects.

        A user the double does not know is refused (400) rather than created.
        """
        op = "UpdateUsersPartial"
        updates = (await self._json(request)).get("users")
        if not isinstance(updates, list) or not updates:
            raise input_error(f"{op} failed with error: users is a required field")
        staged: dict[str, dict[str, Any]] = {}
        for update in updates:
            uid = update.get("id") if isinstance(update, dict) else None
            if not isinstance(uid, str) or not uid:
                raise input_error(f"{op} failed with error: every update needs an id")
            to_set, to_unset = update.get("set") or {}, update.get("unset") or []
            if not isinstance(to_set, dict) or not isinstance(to_unset, list):
                raise input_error(f"{op} failed with error: set is an object, unset a list")
            base = staged.get(uid, self.users.get(uid))
            if base is None:
                raise input_error(f'{op} failed with error: "user {uid!r} does not exist"')
            if "id" in to_set or "id" in to_unset:
                raise input_error(f'{op} failed with error: "id cannot be changed"')
            user = copy.deepcopy(base)
            for key, value in to_set.items():
                if key == REVOKE:
                    value = self._revoke_value(value, op)
                    if value is None:
                        user.pop(REVOKE, None)
                        continue
                set_path(user, key, value)
            for key in to_unset:
                unset_path(user, str(key))
            staged[uid] = user
        self.users.update(staged)
        return web.json_response(
            {"users": {uid: self._user_json(uid) for uid in staged}, "duration": _DURATION}
        )

    async def _query_users(self, request: web.Request) -> web.Response:
        """``GET /users?payload={filter_conditions, sort, limit, offset}``.

        Default page 30, at most 100 (assumed from Stream's docs, not confirmed); default
        order by id.
        """
        op = "QueryUsers"
        query = self._payload(request, op)
        try:
            predicate = compile_filter(query.get("filter_conditions", {}), USER_FIELDS)
            keys = parse_sort(query.get("sort"), USER_FIELDS)
        except FilterError as exc:
            raise input_error(f'{op} failed with error: "{exc}"') from exc
        limit = self._int_option(query, "limit", default=30, maximum=100, op=op)
        offset = self._int_option(query, "offset", default=0, maximum=1000, op=op)
        docs = [
            {
                **user,
                "id": uid,
                "role": user.get("role", "user"),
                "banned": user.get("banned", False),
            }
            for uid, user in self.users.items()
        ]
        ordered = sort_documents([d for d in docs if predicate(d)], keys, "id")
        page = ordered[offset : offset + limit]
        return web.json_response(
            {"users": [self._user_json(d["id"]) for d in page], "duration": _DURATION}
        )

    # -- channels ----------------------------------------------------------------------------

    def _parse_members(self, raw: Any, field: str) -> list[tuple[str, str | None]]:
        """Members as the SDK sends them: ids, or ``{"user_id", "channel_role"}`` objects.

        Returns ``(user_id, channel_role or None)``; unknown users and roles are a 400.
        """
        if not isinstance(raw, list):
            raise input_error(f"{field} must be a list")
        parsed: list[tuple[str, str | None]] = []
        for entry in raw:
            if isinstance(entry, str) and entry:
                parsed.append((entry, None))
                continue
            uid = entry.get("user_id") if isinstance(entry, dict) else None
            if not isinstance(uid, str) or not uid:
                raise input_error(f"{field}: each member is a user id or has a user_id")
            role = entry.get("channel_role")
            if role is not None and role not in self.channel_roles:
                raise input_error(f'{field}: channel_role "{role}" does not exist')
            parsed.append((uid, role))
        missing = [uid for uid, _ in parsed if uid not in self.users]
        if missing and field == "data.members":
            raise input_error(
                "The following users are involved in channel create operation, but don't "
                f"exist: {missing}. Please create the user objects before setting up the channel."
            )
        if missing:
            raise input_error(
                f'UpdateChannel failed with error: "could not find users {missing} from {field}"'
            )
        return parsed

    def _existing(self, request: web.Request) -> StoredChannel:
        cid = f"{request.match_info['type']}:{request.match_info['id']}"
        channel = self.channels.get(cid)
        if channel is None:
            raise StreamError(404, 16, f"Channel '{cid}' not found")
        return channel

    @staticmethod
    def _frozen_value(value: Any, op: str) -> bool:
        if not isinstance(value, bool):
            raise input_error(f'{op} failed with error: "frozen must be true or false"')
        return value

    async def _query_channel(self, request: web.Request) -> web.Response:
        """Get or create: ``data.members`` may be ids or ``{"user_id", "channel_role"}``."""
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
            members = self._parse_members(data.pop("members", None) or [], "data.members")
            self._parse_members([creator], "data.members")
            frozen = self._frozen_value(data.pop("frozen", False), "GetOrCreateChannel")
            now = self.now()
            channel = StoredChannel(
                ctype,
                cid_id,
                creator,
                list(dict.fromkeys(uid for uid, _ in members)),
                data,
                roles={uid: role for uid, role in members if role},
                frozen=frozen,
                created_at=now,
                updated_at=now,
            )
            self.channels[cid] = channel
            self.creations[cid] = self.creations.get(cid, 0) + 1
        limit = int((body.get("members") or {}).get("limit", 100))
        return web.json_response(self._channel_json(channel, limit))

    async def _update_channel(self, request: web.Request) -> web.Response:
        """Full update (``data`` replaces custom data and ``frozen``) and member changes.

        The whole request is checked before anything changes. ``add_members`` adds new
        members with the given ``channel_role`` (default ``channel_member``) and leaves
        existing members as they are; ``assign_roles`` changes existing members' roles;
        ``add_moderators``/``demote_moderators`` set ``channel_moderator``/``channel_member``
        (adding moderators who are not members yet). At most 100 users per list, as Stream.
        """
        op = "UpdateChannel"
        body = await self._json(request)
        channel = self._existing(request)
        unknown = sorted(set(body) - _UPDATE_KEYS)
        if unknown:
            raise input_error(f"{op}: {unknown} not modelled by the stream double")
        for name in ("add_members", "remove_members", "add_moderators", "demote_moderators"):
            if len(body.get(name) or []) > 100:
                raise input_error(f'{op} failed with error: "at most 100 users in {name}"')
        data = body.get("data")
        if data is not None and not isinstance(data, dict):
            raise input_error(f'{op} failed with error: "data must be an object"')
        frozen = self._frozen_value(data.get("frozen", False), op) if data is not None else None
        adds = self._parse_members(body.get("add_members") or [], "add_members")
        moderators = self._parse_members(body.get("add_moderators") or [], "add_moderators")
        removes = self._user_ids(body.get("remove_members"), "remove_members")
        demotes = self._user_ids(body.get("demote_moderators"), "demote_moderators")
        assigns = self._parse_members(body.get("assign_roles") or [], "assign_roles")
        will_be_members = (set(channel.members) | {uid for uid, _ in adds}) - set(removes)
        for uid, role in assigns:
            if role is None:
                raise input_error(f'{op} failed with error: "assign_roles needs channel_role"')
            if uid not in will_be_members:
                raise input_error(f'{op} failed with error: "user {uid!r} is not a member"')

        if data is not None and frozen is not None:
            channel.data = {
                k: v for k, v in data.items() if k not in _CHANNEL_RESERVED and k != "frozen"
            }
            channel.frozen = frozen
        for uid, role in adds:
            if uid not in channel.members:
                channel.members.append(uid)
                if role is not None:
                    channel.roles[uid] = role
        for uid in removes:
            if uid in channel.members:
                channel.members.remove(uid)
            channel.roles.pop(uid, None)
        for uid, _ in moderators:
            if uid not in channel.members:
                channel.members.append(uid)
            channel.roles[uid] = CHANNEL_MODERATOR
        for uid in demotes:
            if uid in channel.members:
                channel.roles[uid] = CHANNEL_MEMBER
        for uid, role in assigns:
            channel.roles[uid] = str(role)
        channel.updated_at = self.now()
        return web.json_response(self._channel_json(channel))

    @staticmethod
    def _user_ids(raw: Any, field: str) -> list[str]:
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(uid, str) for uid in raw):
            raise input_error(f"{field} must be a list of user ids")
        return list(raw)

    async def _update_channel_partial(self, request: web.Request) -> web.Response:
        """``set``/``unset`` custom fields (dotted keys reach into objects) and ``frozen``.

        Other custom data is kept. Unsetting ``frozen`` unfreezes. Built-in fields such as
        ``members`` or ``created_by`` cannot be set here (400).
        """
        op = "UpdateChannelPartial"
        body = await self._json(request)
        channel = self._existing(request)
        to_set, to_unset = body.get("set") or {}, body.get("unset") or []
        if not isinstance(to_set, dict) or not isinstance(to_unset, list):
            raise input_error(f'{op} failed with error: "set is an object, unset a list"')
        for key in [*to_set, *to_unset]:
            if not isinstance(key, str) or key.split(".")[0] in _CHANNEL_RESERVED:
                raise input_error(f'{op} failed with error: "{key} cannot be updated"')
        frozen = channel.frozen
        data = copy.deepcopy(channel.data)
        for key, value in to_set.items():
            if key == "frozen":
                frozen = self._frozen_value(value, op)
            else:
                set_path(data, key, value)
        for key in to_unset:
            if key == "frozen":
                frozen = False
            else:
                unset_path(data, key)
        channel.data, channel.frozen = data, frozen
        channel.updated_at = self.now()
        return web.json_response(self._channel_json(channel))

    async def _query_channels(self, request: web.Request) -> web.Response:
        """``POST /channels``: filter, sort and page every channel the double holds.

        ``limit`` defaults to 10 (at most 30), ``offset`` to 0 (at most 1000),
        ``member_limit`` to 100 (at most 100), ``message_limit`` 25 (at most 300), as in
        Stream's docs; above a maximum is a 400. The default order is Stream's
        ``last_updated`` descending, which without messages is ``created_at`` newest first;
        ties (and every order) end with ``cid`` ascending, so paging is deterministic.
        ``state``, ``watch`` and ``presence`` are accepted and ignored: the answer always
        carries the state, and nothing is watched.
        """
        op = "QueryChannels"
        body = await self._json(request)
        try:
            predicate = compile_filter(body.get("filter_conditions", {}), CHANNEL_FIELDS)
            keys = parse_sort(body.get("sort"), CHANNEL_FIELDS)
        except FilterError as exc:
            raise input_error(f'{op} failed with error: "{exc}"') from exc
        limit = self._int_option(body, "limit", default=10, maximum=30, op=op)
        offset = self._int_option(body, "offset", default=0, maximum=1000, op=op)
        member_limit = self._int_option(body, "member_limit", default=100, maximum=100, op=op)
        self._int_option(body, "message_limit", default=25, maximum=300, op=op)
        docs = [self._channel_doc(ch) for ch in self.channels.values()]
        ordered = sort_documents([d for d in docs if predicate(d)], keys, "cid")
        page = [self.channels[d["cid"]] for d in ordered[offset : offset + limit]]
        return web.json_response(
            {
                "channels": [self._channel_state(ch, member_limit) for ch in page],
                "duration": _DURATION,
            }
        )

    # -- channel types and app settings ------------------------------------------------------

    async def _get_channel_type(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.channel_types:
            raise StreamError(404, 16, f"channel type '{name}' doesn't exist")
        return web.json_response({**self.channel_types[name], "duration": _DURATION})

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
        return web.json_response({**self.channel_types[name], "duration": _DURATION})

    async def _get_app(self, request: web.Request) -> web.Response:
        return web.json_response({"app": self.app, "duration": _DURATION})

    async def _update_app(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if REVOKE in body:  # app-wide token revocation (``revoke_tokens``)
            body[REVOKE] = self._revoke_value(body[REVOKE], "UpdateApp")
        for key, value in body.items():
            if key.endswith("_upload_config") and isinstance(value, dict):
                self.app[key] = {**self.app.get(key, {}), **value}
            else:
                self.app[key] = value
        return web.json_response({"duration": _DURATION})
