"""The JSON shapes of Stream's client-side answers and events (as the JS SDK reads them)."""

from __future__ import annotations

from typing import Any

from tests.stream_double import StoredChannel, StreamDouble
from tests.stream_double.realtime.state import ChannelLog, RealtimeState, iso_now

__all__ = [
    "capabilities",
    "channel_state",
    "event",
    "own_user",
    "user",
]

# What a channel_member of Stream's "messaging" type may do (the JS SDK and stream-chat-react
# read these to show or hide the composer, uploads, read receipts and typing).
_MEMBER_CAPABILITIES = (
    "connect-events",
    "delete-own-message",
    "quote-message",
    "read-events",
    "search-messages",
    "send-links",
    "send-message",
    "send-reply",
    "send-typing-events",
    "typing-events",
    "update-own-message",
    "upload-file",
)
# A frozen channel can still be read, not written to.
_FROZEN_CAPABILITIES = ("connect-events", "read-events", "search-messages", "typing-events")


def frozen(channel: StoredChannel) -> bool:
    return channel.frozen


def channel_role(channel: StoredChannel, user_id: str) -> str:
    return channel.role_of(user_id)


def user(double: StreamDouble, user_id: str) -> dict[str, Any]:
    """A user as Stream embeds it in messages, members and events."""
    stored = double.users.get(user_id, {"id": user_id})
    return {"role": "user", "banned": False, "online": False, **stored, "id": user_id}


def own_user(double: StreamDouble, state: RealtimeState, user_id: str) -> dict[str, Any]:
    """The ``me`` of the first ``health.check``: the user plus their own counters."""
    unread = {
        cid: log.unread_for(user_id)
        for cid, log in state.channels.items()
        if cid in double.channels and user_id in double.channels[cid].members
    }
    return {
        **user(double, user_id),
        "online": True,
        "created_at": iso_now(),
        "updated_at": iso_now(),
        "last_active": iso_now(),
        "channel_mutes": [],
        "mutes": [],
        "devices": [],
        "invisible": False,
        "total_unread_count": sum(unread.values()),
        "unread_count": sum(unread.values()),
        "unread_channels": sum(1 for n in unread.values() if n),
        "unread_threads": 0,
    }


def capabilities(channel: StoredChannel, user_id: str) -> list[str]:
    if user_id not in channel.members:
        return []
    return list(_FROZEN_CAPABILITIES if frozen(channel) else _MEMBER_CAPABILITIES)


def _member(
    double: StreamDouble, channel: StoredChannel, log: ChannelLog, uid: str
) -> dict[str, Any]:
    return {
        "user_id": uid,
        "user": user(double, uid),
        "channel_role": channel_role(channel, uid),
        "role": "member",
        "created_at": log.created_at,
        "updated_at": log.created_at,
        "banned": False,
        "shadow_banned": False,
        "notifications_muted": False,
    }


def channel_state(
    double: StreamDouble,
    state: RealtimeState,
    channel: StoredChannel,
    user_id: str,
    *,
    message_limit: int = 25,
) -> dict[str, Any]:
    """A channel as ``POST /channels/{type}/{id}/query`` (and query-channels) answer it."""
    log = state.log(channel.cid)
    members = [_member(double, channel, log, uid) for uid in channel.members]
    config = {"commands": [], **double.channel_types.get(channel.type, {})}
    messages = log.messages[-message_limit:] if message_limit > 0 else []
    last_message_at = log.messages[-1]["created_at"] if log.messages else None
    return {
        "channel": {
            **channel.data,
            "id": channel.id,
            "type": channel.type,
            "cid": channel.cid,
            "created_by": user(double, channel.created_by_id),
            "created_at": log.created_at,
            "updated_at": log.created_at,
            "last_message_at": last_message_at,
            "frozen": frozen(channel),
            "disabled": False,
            "member_count": len(channel.members),
            "config": config,
            "own_capabilities": capabilities(channel, user_id),
        },
        "messages": messages,
        "pinned_messages": [],
        "members": members,
        "membership": next((m for m in members if m["user_id"] == user_id), None),
        "read": [
            {
                "user": user(double, uid),
                "last_read": read.last_read if read else log.created_at,
                "last_read_message_id": read.last_read_message_id if read else None,
                "unread_messages": log.unread_for(uid),
            }
            for uid in channel.members
            for read in [log.reads.get(uid)]
        ],
        "watcher_count": len({c.user_id for c in state.watchers(channel.cid)}),
        "watchers": [],
        "duration": "0.01ms",
    }


def event(kind: str, channel: StoredChannel, **fields: Any) -> dict[str, Any]:
    """A channel event as the socket delivers it."""
    return {
        "type": kind,
        "cid": channel.cid,
        "channel_type": channel.type,
        "channel_id": channel.id,
        "created_at": iso_now(),
        **fields,
    }
