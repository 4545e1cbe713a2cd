"""The Stream double's records and value helpers: what it stores, what it answers with.

Kept apart from the HTTP server so other double modules can import them without a cycle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

CHANNEL_MEMBER = "channel_member"
CHANNEL_MODERATOR = "channel_moderator"
BUILTIN_CHANNEL_ROLES = frozenset({CHANNEL_MEMBER, CHANNEL_MODERATOR})


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Call:
    """One request the double received (whatever it answered).

    ``kind`` names the endpoint (``"query_channels"``, ``"update_users_partial"``, ...; see
    the module docstring of ``tests.stream_double``), ``""`` for a path it does not serve.
    ``params`` is the query string without ``api_key`` (``GET /users`` sends ``payload``).
    """

    method: str
    path: str
    time: float
    status: int
    body: Any
    kind: str = ""
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class StoredChannel:
    """A channel as the double holds it.

    ``members`` keeps the join order; ``roles`` holds each member's ``channel_role`` when it
    is not the default (a member absent from ``roles`` is a ``channel_member``). ``data`` is
    the channel's custom data (``order_id``, ``name``...), never the built-in fields.
    """

    type: str
    id: str
    created_by_id: str
    members: list[str]
    data: dict[str, Any] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    frozen: bool = False
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)

    @property
    def cid(self) -> str:
        return f"{self.type}:{self.id}"

    def role_of(self, user_id: str) -> str:
        return self.roles.get(user_id, CHANNEL_MEMBER)


class StreamError(Exception):
    """A Stream-style API error answer (HTTP status, Stream error code, message)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def input_error(message: str) -> StreamError:
    """Stream's answer to a bad request: HTTP 400, code 4."""
    return StreamError(400, 4, message)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as Stream writes times (``...T07:25:37.632561Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any) -> datetime:
    """An RFC 3339 timestamp with a time zone, as Stream's API requires, or ``ValueError``.

    ``datetime.isoformat()`` of a naive datetime (no offset) is refused: Stream's API parses
    RFC 3339, which needs the offset. Digits beyond microseconds (Go writes nanoseconds) are
    dropped.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 timestamp string, got {value!r}")
    moment = datetime.fromisoformat(_FRACTION.sub(r"\1", value))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone (RFC 3339 requires one)")
    return moment.astimezone(UTC)


def set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts, as Stream's partial updates do for dotted keys."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[leaf] = value


def unset_path(target: dict[str, Any], dotted: str) -> None:
    """Remove ``a.b.c`` from nested dicts if present."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            return
        target = child
    target.pop(leaf, None)
