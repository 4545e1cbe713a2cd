"""The Stream chat backend: :class:`gateway.chat.ChatBackend` on the async stream-chat SDK.

Every Stream call goes through :meth:`StreamChatBackend._call`, the one place where
foreign failures become :class:`ChatBackendError`:

- ``StreamAPIException`` 429 and 5xx (and 408), ``aiohttp`` client errors and timeouts are
  *transient*; 429 carries ``retry_after_s`` from Stream's ``X-RateLimit-Reset`` header;
- any other 4xx (bad request, bad credentials, missing permission) is not.

The SDK's ``StreamAPIException`` has no response headers, so the backend gives the SDK its
own ``aiohttp.ClientSession`` with a client middleware that records each response's
rate-limit headers for the call in progress (a context variable scopes it to the calling
task). When Stream says the limit is spent (a 429, or ``X-RateLimit-Remaining: 0``), the
backend holds *every* further call until the reset time and fails it locally, so no
request reaches Stream before the window reopens.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from stream_chat import StreamChatAsync
from stream_chat.base.exceptions import StreamAPIException

from gateway.chat import MEMBER, ChannelSnapshot, ChatBackendError
from gateway.chat.drift import drift, wanted_members
from gateway.chat.users import UserUpserts
from gateway.config import StreamSettings
from gateway.domain import OrderChannel, Participant
from gateway.metrics import GatewayMetrics

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_STREAM_URL", "StreamChatBackend"]

DEFAULT_STREAM_URL = "https://chat.stream-io-api.com"
"""Stream's API base URL, used when ``STREAM_CHAT_URL`` is not set."""

_RATE_LIMIT_MARGIN_S = 0.05
"""Added to Stream's reset time so a retry lands after it, not on it."""
_MAX_RATE_LIMIT_WAIT_S = 3600.0
"""A reset further away than this is treated as a clock problem and capped."""
_MEMBER_PAGE = 100
"""Members Stream returns with a channel; order channels have a few."""
_QUERY_PAGE = 30
"""Stream's largest ``query_channels`` page."""
_MAX_OFFSET = 900
"""Listings restart from a creation time before Stream's offset limit (1000)."""


@dataclass
class _Observed:
    """The rate-limit headers of the last HTTP response of one SDK call, as the middleware
    saw them (``None``: the header was absent, or no response came)."""

    remaining: str | None = None
    reset: str | None = None


_observed: contextvars.ContextVar[_Observed | None] = contextvars.ContextVar(
    "stream_observed", default=None
)


class StreamChatBackend:
    """Makes Stream hold each order's channel exactly as the registry says.

    Build it with :meth:`open` inside the running loop; :meth:`close` it on shutdown.
    """

    def __init__(
        self,
        *,
        client: StreamChatAsync,
        system_user_id: str,
        call_timeout_s: float,
        wall_clock: Callable[[], float] = time.time,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        # The SDK bounds every HTTP request it makes by its timeout (aiohttp's total
        # timeout): that is the bound of each call. STREAM_CHAT_TIMEOUT, read by the SDK,
        # must not stretch it.
        client.timeout = call_timeout_s
        self._client = client
        self._metrics = metrics
        self._system_user_id = system_user_id
        self._call_timeout_s = call_timeout_s
        self._wall_clock = wall_clock
        self._not_before = 0.0  # wall-clock time before which Stream must not be called
        self._sent = 0
        self._users = UserUpserts(
            lambda users: self._call("upsert_users", lambda: self._client.upsert_users(users))
        )

    @classmethod
    async def open(
        cls, settings: StreamSettings, *, metrics: GatewayMetrics | None = None
    ) -> StreamChatBackend:
        """Create the SDK client and its HTTP session in the running loop; count every
        call's outcome (and Stream's last rate-limit remaining) in ``metrics``."""
        base_url = settings.stream_base_url or DEFAULT_STREAM_URL
        client = StreamChatAsync(
            api_key=settings.stream_api_key,
            api_secret=settings.stream_api_secret,
            timeout=settings.stream_timeout_s,
            base_url=base_url,
        )
        # The SDK opened a session of its own in __init__; swap in ours (same base URL and
        # keep-alive), which lets the middleware see rate-limit headers.
        own = client.session
        client.set_http_session(
            aiohttp.ClientSession(
                base_url=base_url,
                connector=aiohttp.TCPConnector(keepalive_timeout=59.0),
                middlewares=(_observe_response,),
                # Stream's API sets no cookies: skip the jar's work on every request.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        )
        await own.close()
        return cls(
            client=client,
            system_user_id=settings.stream_system_user_id,
            call_timeout_s=settings.stream_timeout_s,
            metrics=metrics,
        )

    async def close(self) -> None:
        """Stop the user upserts in flight and close the SDK's HTTP session."""
        await self._users.close()
        await self._client.close()

    # -- ChatBackend -----------------------------------------------------------------------

    @property
    def calls(self) -> int:
        """Requests sent to Stream so far (calls held back by a rate limit not counted)."""
        return self._sent

    async def sync_channel(self, channel: OrderChannel) -> None:
        """Upsert the users this process has not upserted yet (in batches shared with
        concurrent orders: :mod:`gateway.chat.users`), get-or-create the channel (1 call),
        then repair only what differs (members, agents' roles, ``frozen``, ``order_id``:
        one call each)."""
        users = [_user(p) for p in (channel.buyer, channel.seller, *channel.agents)]
        users.append({"id": self._system_user_id})
        await self._users.ensure(users)
        wanted = wanted_members(channel)
        handle = self._client.channel(
            channel.channel_type,
            channel.channel_id,
            data={
                "members": [_member(uid, role) for uid, role in wanted.items()],
                "order_id": channel.order_id,
                "created_by_id": self._system_user_id,
            },
        )
        state = await self._call(
            "get_or_create_channel",
            lambda: handle.query(
                watch=False, presence=False, state=True, members={"limit": _MEMBER_PAGE}
            ),
        )
        repairs = drift(channel, _snapshot(state))
        if not repairs:
            return
        logger.warning("channel %s drifted: %s", channel.cid, "; ".join(repairs.describe()))
        if repairs.add:
            members = [_member(uid, role) for uid, role in repairs.add]
            await self._call("add_members", lambda: handle.add_members(members))
        if repairs.remove:
            await self._call("remove_members", lambda: handle.remove_members(list(repairs.remove)))
        if repairs.roles:
            roles = [{"user_id": uid, "channel_role": role} for uid, role in repairs.roles]
            await self._call("assign_roles", lambda: handle.assign_roles(roles))
        changes: dict[str, Any] = {}
        if repairs.frozen is not None:
            changes["frozen"] = repairs.frozen
        if repairs.order_id is not None:
            changes["order_id"] = repairs.order_id
        if changes:
            # A partial update: a full one would replace the channel's custom data.
            await self._call(
                "update_channel_partial", lambda: handle.update_partial(to_set=changes)
            )

    async def revoke_tokens(self, user_id: str, before: datetime) -> None:
        """Stream's ``revoke_tokens_issued_before`` on the user (a partial update); a user
        Stream does not know yet is created with it."""
        try:
            await self._call(
                "revoke_user_token", lambda: self._client.revoke_user_token(user_id, before)
            )
        except ChatBackendError as exc:
            cause = exc.__cause__
            if not isinstance(cause, StreamAPIException) or int(cause.status_code) != 400:
                raise
            # No such user in Stream: nothing holds their tokens' revocation yet.
            user = {"id": user_id, "revoke_tokens_issued_before": before.isoformat()}
            await self._call("upsert_users", lambda: self._client.upsert_users([user]))

    async def inspect(self, channels: Sequence[OrderChannel]) -> dict[str, ChannelSnapshot]:
        """One ``query_channels`` call for up to 30 channels."""
        if not channels:
            return {}
        if len(channels) > _QUERY_PAGE:
            raise ValueError(f"inspect at most {_QUERY_PAGE} channels per call")
        cids = [c.cid for c in channels]
        answer = await self._call(
            "query_channels",
            lambda: self._client.query_channels(
                {"cid": {"$in": cids}},
                [{"field": "created_at", "direction": 1}],
                limit=_QUERY_PAGE,
                member_limit=_MEMBER_PAGE,
                message_limit=0,
            ),
        )
        found = (_snapshot(state) for state in answer.get("channels") or [])
        return {snapshot.cid: snapshot for snapshot in found if snapshot is not None}

    async def order_channels(self, channel_type: str) -> AsyncIterator[ChannelSnapshot]:
        """Pages of 30 by creation time. Stream refuses offsets past 1000, so every 900
        channels the listing restarts from the last creation time seen (``$gte``),
        skipping the channels of that instant it has already given."""
        since: str | None = None
        at_since: set[str] = set()
        offset = 0
        while True:
            conditions: dict[str, Any] = {"type": channel_type, "order_id": {"$exists": True}}
            if since is not None:
                conditions["created_at"] = {"$gte": since}
            answer = await self._call(
                "query_channels",
                functools.partial(
                    self._client.query_channels,
                    conditions,
                    [{"field": "created_at", "direction": 1}],
                    limit=_QUERY_PAGE,
                    offset=offset,
                    member_limit=_MEMBER_PAGE,
                    message_limit=0,
                ),
            )
            page = answer.get("channels") or []
            for state in page:
                snapshot = _snapshot(state)
                if snapshot is None or snapshot.cid in at_since:
                    continue
                yield snapshot
            if len(page) < _QUERY_PAGE:
                return
            offset += _QUERY_PAGE
            if offset >= _MAX_OFFSET:
                last = str((page[-1].get("channel") or {}).get("created_at"))
                if last == since:
                    raise ChatBackendError(
                        f"more than {_MAX_OFFSET} channels created at {last}", transient=False
                    )
                since, offset = last, 0
                at_since = {
                    str((s.get("channel") or {}).get("cid"))
                    for s in page
                    if (s.get("channel") or {}).get("created_at") == last
                }

    # -- app administration (readiness) ----------------------------------------------------

    async def get_channel_type(self, name: str) -> dict[str, Any] | None:
        """The channel type's configuration as Stream returns it; ``None`` if there is none."""
        try:
            return await self._call("get_channel_type", lambda: self._client.get_channel_type(name))
        except ChatBackendError as exc:
            cause = exc.__cause__
            if isinstance(cause, StreamAPIException) and int(cause.status_code) == 404:
                return None
            raise

    async def update_channel_type(self, name: str, **changes: Any) -> dict[str, Any]:
        """Update some settings of a channel type."""
        return await self._call(
            "update_channel_type", lambda: self._client.update_channel_type(name, **changes)
        )

    async def get_app_settings(self) -> dict[str, Any]:
        """The app's settings (``{"app": {...}}``)."""
        return await self._call("get_app_settings", self._client.get_app_settings)

    async def update_app_settings(self, **changes: Any) -> dict[str, Any]:
        """Update some app settings."""
        return await self._call(
            "update_app_settings", lambda: self._client.update_app_settings(**changes)
        )

    # -- the error boundary ----------------------------------------------------------------

    async def _call(self, what: str, request: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        outcome = "cancelled"  # the caller's deadline (inline sync budget) ran out
        started = time.perf_counter()
        try:
            response = await self._call_once(what, request)
            outcome = "ok"
            return response
        except ChatBackendError as exc:
            outcome = _outcome(exc)
            raise
        finally:
            if self._metrics is not None:
                self._metrics.observe_stream_call(what, outcome, time.perf_counter() - started)

    async def _call_once(self, what: str, request: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        wait_s = self._not_before - self._wall_clock()
        if wait_s > 0:
            # Stream said the window is spent: fail here rather than spend a call.
            raise ChatBackendError(
                f"stream {what}: rate limited for {wait_s:.2f}s more",
                transient=True,
                retry_after_s=wait_s,
            )
        observed = _Observed()
        token = _observed.set(observed)
        self._sent += 1
        try:
            response = await request()  # each SDK request is bounded by client.timeout
        except StreamAPIException as exc:
            raise self._api_error(what, exc, observed) from exc
        except TimeoutError as exc:
            raise ChatBackendError(
                f"stream {what}: no answer within {self._call_timeout_s:g}s", transient=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise ChatBackendError(
                f"stream {what}: {type(exc).__name__}: {exc}", transient=True
            ) from exc
        finally:
            _observed.reset(token)
            self._note_remaining(observed)
        self._note_rate_limit(observed, exhausted_only=True)
        return dict(response)

    def _api_error(
        self, what: str, exc: StreamAPIException, observed: _Observed
    ) -> ChatBackendError:
        status = int(exc.status_code)
        message = f"stream {what}: HTTP {status}: {exc}"
        if status == 429:
            retry_after = self._note_rate_limit(observed, exhausted_only=False)
            return ChatBackendError(message, transient=True, retry_after_s=retry_after)
        return ChatBackendError(message, transient=status >= 500 or status == 408)

    def _note_remaining(self, observed: _Observed) -> None:
        raw = observed.remaining
        if self._metrics is not None and raw is not None and raw.strip().isdigit():
            self._metrics.stream_rate_limit_remaining.set(int(raw))

    def _note_rate_limit(self, observed: _Observed, *, exhausted_only: bool) -> float | None:
        """Hold calls until Stream's reset time; returns the wait, if any."""
        if exhausted_only and (observed.remaining or "").strip() != "0":
            return None
        try:
            reset = float(observed.reset or "")
        except ValueError:
            return None
        wait_s = min(reset - self._wall_clock(), _MAX_RATE_LIMIT_WAIT_S)
        if wait_s <= 0:
            return 0.0 if not exhausted_only else None
        wait_s += _RATE_LIMIT_MARGIN_S
        self._not_before = max(self._not_before, self._wall_clock() + wait_s)
        logger.warning("stream rate limit reached; holding calls for %.2fs", wait_s)
        return wait_s


async def _observe_response(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    response = await handler(request)
    observed = _observed.get()
    if observed is not None:
        headers = response.headers  # case-insensitive
        observed.remaining = headers.get("X-RateLimit-Remaining")
        observed.reset = headers.get("X-RateLimit-Reset")
    return response


def _outcome(error: ChatBackendError) -> str:
    if error.retry_after_s is not None:
        return "rate_limited"
    if isinstance(error.__cause__, TimeoutError):
        return "timeout"
    return "transient" if error.transient else "rejected"


def _member(user_id: str, role: str) -> dict[str, str]:
    return {"user_id": user_id} if role == MEMBER else {"user_id": user_id, "channel_role": role}


def _snapshot(state: Mapping[str, Any]) -> ChannelSnapshot | None:
    """The snapshot of a channel state as Stream answers ``query``/``query_channels``."""
    data = state.get("channel") or {}
    cid = data.get("cid")
    if not cid:
        return None
    order_id = data.get("order_id")
    return ChannelSnapshot(
        cid=str(cid),
        order_id=order_id if isinstance(order_id, str) else None,
        members={
            str(m.get("user_id")): str(m.get("channel_role") or MEMBER)
            for m in state.get("members") or []
        },
        frozen=bool(data.get("frozen")),
    )


def _user(person: Participant) -> dict[str, str]:
    user = {"id": person.user_id}
    if person.display_name:
        user["name"] = person.display_name
    if person.image_url:
        user["image"] = person.image_url
    return user
