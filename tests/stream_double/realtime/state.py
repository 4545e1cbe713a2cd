"""What the client-side API of the double remembers: sockets, messages, reads, uploads.

Kept apart from :class:`~tests.stream_double.StoredChannel` (which the server-side API owns):
one :class:`RealtimeState` per double, found with :func:`state_of`, surviving the double's
outages (stop/start) like Stream's own storage would.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.stream_double import StreamDouble

__all__ = ["ChannelLog", "Connection", "RealtimeState", "Upload", "iso_now", "state_of"]


def iso_now() -> str:
    """Now as Stream writes times: RFC 3339, UTC, microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(eq=False)
class Connection:
    """One WebSocket ``/connect`` session of a user."""

    id: str
    user_id: str
    ws: web.WebSocketResponse
    origin: str | None
    opened_at: float = field(default_factory=time.time)
    watching: set[str] = field(default_factory=set)
    closed_at: float | None = None
    close_code: int | None = None
    """The close code (the client's, or ours when the double closed it)."""
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def open(self) -> bool:
        return self.closed_at is None

    async def send(self, event: dict[str, Any]) -> None:
        """Send one event; a socket that is closing just misses it (as on Stream)."""
        if self.ws.closed:
            return
        async with self.send_lock:
            try:
                await self.ws.send_json(event)
            except (ConnectionError, RuntimeError):
                pass


@dataclass
class Read:
    """A member's read state in one channel."""

    last_read: str
    last_read_message_id: str | None = None


@dataclass
class ChannelLog:
    """The messages and read states of one channel (oldest message first)."""

    created_at: str = field(default_factory=iso_now)
    messages: list[dict[str, Any]] = field(default_factory=list)
    reads: dict[str, Read] = field(default_factory=dict)

    def unread_for(self, user_id: str) -> int:
        read = self.reads.get(user_id)
        since = read.last_read if read else self.created_at
        return sum(
            1 for m in self.messages if m["user"]["id"] != user_id and m["created_at"] > since
        )


@dataclass(frozen=True)
class Upload:
    """An uploaded image, served publicly at its URL (like Stream's CDN)."""

    content_type: str
    data: bytes
    user_id: str


@dataclass
class RealtimeState:
    """Everything the client-side API keeps for one double."""

    connections: list[Connection] = field(default_factory=list)
    """Every socket ever accepted, open or closed, in order."""
    channels: dict[str, ChannelLog] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    cors_origins: set[str] = field(default_factory=set)
    """Browser origins answered with CORS headers (the page's origin in tests)."""
    expired_through: int = 0
    """User tokens whose ``exp`` is at or before this Unix time are answered as expired
    (code 40), as if Stream's clock had passed it; see :meth:`expire_tokens_through`."""
    latest_token_exp: int = 0
    """The latest ``exp`` of the user tokens accepted so far."""
    refused_connects: list[tuple[str | None, int]] = field(default_factory=list)
    """``(user id, error code)`` of every ``/connect`` refused on the socket."""

    def log(self, cid: str) -> ChannelLog:
        return self.channels.setdefault(cid, ChannelLog())

    def open_connections(self, user_id: str | None = None) -> list[Connection]:
        return [c for c in self.connections if c.open and user_id in (None, c.user_id)]

    def connections_of(self, user_id: str) -> list[Connection]:
        return [c for c in self.connections if c.user_id == user_id]

    def watchers(self, cid: str) -> list[Connection]:
        return [c for c in self.connections if c.open and cid in c.watching]

    def expire_tokens_through(self, exp: int) -> None:
        """Treat every user token with ``exp <= exp`` as expired from now on.

        Tokens say when they expire in whole seconds; a test that wants a token to have
        expired, without waiting for its ``exp``, moves Stream's notion of "now" past it for
        that token alone. Tokens issued afterwards (a later ``exp``) stay valid.
        """
        self.expired_through = max(self.expired_through, exp)

    def expire_tokens_seen(self) -> None:
        """Expire every user token the double has accepted so far (see above)."""
        self.expire_tokens_through(self.latest_token_exp)

    async def close_all(self, code: int) -> None:
        """Close every open socket from the server side (an outage, a deploy)."""
        for connection in self.open_connections():
            connection.close_code = code
            await connection.ws.close(code=code, message=b"server shutdown")


_STATES: weakref.WeakKeyDictionary[StreamDouble, RealtimeState] = weakref.WeakKeyDictionary()


def state_of(double: StreamDouble) -> RealtimeState:
    """The client-side state of ``double`` (created on first use)."""
    state = _STATES.get(double)
    if state is None:
        state = _STATES[double] = RealtimeState()
    return state
