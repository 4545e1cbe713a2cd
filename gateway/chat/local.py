"""The local chat backend: the dev profile's stand-in for Stream, in process memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.domain import OrderChannel, Participant


@dataclass
class LocalChannel:
    """A channel as the local backend holds it."""

    cid: str
    order_id: str
    members: set[str] = field(default_factory=set)


class LocalChatBackend:
    """:class:`gateway.chat.ChatBackend` that keeps users and channels in memory.

    It lets the dev profile run every use case with no Stream account. Browsers cannot
    chat through it: tokens it goes with are signed with the dev secret.
    """

    def __init__(self) -> None:
        self.users: dict[str, Participant] = {}
        self.channels: dict[str, LocalChannel] = {}

    async def ensure_channel(self, channel: OrderChannel) -> None:
        for person in (channel.buyer, channel.seller):
            self.users[person.user_id] = person
        stored = self.channels.setdefault(
            channel.cid, LocalChannel(cid=channel.cid, order_id=channel.order_id)
        )
        stored.members = set(channel.member_ids)

    async def close(self) -> None:
        return None
