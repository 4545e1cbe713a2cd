"""The local chat backend: the dev profile's stand-in for Stream, in process memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gateway.chat import ChannelSnapshot
from gateway.chat.drift import wanted_members
from gateway.domain import OrderChannel, Participant


@dataclass
class LocalChannel:
    """A channel as the local backend holds it."""

    cid: str
    order_id: str
    members: dict[str, str] = field(default_factory=dict)
    frozen: bool = False


class LocalChatBackend:
    """:class:`gateway.chat.ChatBackend` that keeps users and channels in memory.

    It lets the dev profile run every use case with no Stream account. Browsers cannot
    chat through it: tokens it goes with are signed with the dev secret.
    """

    def __init__(self) -> None:
        self.users: dict[str, Participant] = {}
        self.channels: dict[str, LocalChannel] = {}
        self.revoked_before: dict[str, datetime] = {}
        self._calls = 0

    @property
    def calls(self) -> int:
        return self._calls

    async def sync_channel(self, channel: OrderChannel) -> None:
        self._calls += 1
        for person in (channel.buyer, channel.seller, *channel.agents):
            self.users[person.user_id] = person
        stored = self.channels.setdefault(
            channel.cid, LocalChannel(cid=channel.cid, order_id=channel.order_id)
        )
        stored.members = wanted_members(channel)
        stored.frozen = channel.frozen

    async def revoke_tokens(self, user_id: str, before: datetime) -> None:
        self._calls += 1
        self.revoked_before[user_id] = before

    async def inspect(self, channels: Sequence[OrderChannel]) -> dict[str, ChannelSnapshot]:
        self._calls += 1
        return {
            c.cid: self._snapshot(self.channels[c.cid]) for c in channels if c.cid in self.channels
        }

    async def order_channels(self, channel_type: str) -> AsyncIterator[ChannelSnapshot]:
        self._calls += 1
        for cid, held in list(self.channels.items()):
            if cid.startswith(f"{channel_type}:"):
                yield self._snapshot(held)

    @staticmethod
    def _snapshot(held: LocalChannel) -> ChannelSnapshot:
        return ChannelSnapshot(held.cid, held.order_id, dict(held.members), held.frozen)

    async def close(self) -> None:
        return None
