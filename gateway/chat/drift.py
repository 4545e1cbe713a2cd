"""How a channel in the chat provider differs from what the registry wants. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.chat import MEMBER, MODERATOR, ChannelSnapshot
from gateway.domain import OrderChannel


def wanted_members(channel: OrderChannel) -> dict[str, str]:
    """Member user id -> ``channel_role`` the registry wants: buyer and seller as members,
    support agents as moderators."""
    wanted = {channel.buyer.user_id: MEMBER, channel.seller.user_id: MEMBER}
    wanted.update((agent, MODERATOR) for agent in channel.agent_ids)
    return wanted


@dataclass(frozen=True, slots=True)
class Drift:
    """The repairs that make a channel match its order. Empty when nothing differs."""

    missing_channel: bool = False
    add: tuple[tuple[str, str], ...] = ()
    """Members to add: ``(user id, channel_role)``."""
    remove: tuple[str, ...] = ()
    """Strangers to remove."""
    roles: tuple[tuple[str, str], ...] = ()
    """Members whose role must change (support agents): ``(user id, channel_role)``."""
    frozen: bool | None = None
    """The ``frozen`` value to set, when it differs."""
    order_id: str | None = None
    """The ``order_id`` custom field to set, when missing or wrong."""

    def __bool__(self) -> bool:
        return bool(
            self.missing_channel
            or self.add
            or self.remove
            or self.roles
            or self.frozen is not None
            or self.order_id is not None
        )

    def describe(self) -> list[str]:
        """One short line per difference, for logs and reports."""
        lines = ["channel missing"] if self.missing_channel else []
        lines += [f"member {uid} missing ({role})" for uid, role in self.add]
        lines += [f"stranger {uid} is a member" for uid in self.remove]
        lines += [f"member {uid} should be {role}" for uid, role in self.roles]
        if self.frozen is not None:
            lines.append("should be frozen" if self.frozen else "should not be frozen")
        if self.order_id is not None:
            lines.append("order_id data missing")
        return lines


def drift(channel: OrderChannel, held: ChannelSnapshot | None) -> Drift:
    """What must change in ``held`` (``None``: no channel) to match ``channel``."""
    wanted = wanted_members(channel)
    if held is None:
        return Drift(
            missing_channel=True,
            add=tuple(wanted.items()),
            frozen=True if channel.frozen else None,
            order_id=channel.order_id,
        )
    members = held.members
    return Drift(
        add=tuple((uid, role) for uid, role in wanted.items() if uid not in members),
        remove=tuple(sorted(uid for uid in members if uid not in wanted)),
        roles=tuple(
            (uid, MODERATOR)
            for uid in channel.agent_ids
            if uid in members and members[uid] != MODERATOR
        ),
        frozen=channel.frozen if held.frozen != channel.frozen else None,
        order_id=channel.order_id if held.order_id != channel.order_id else None,
    )
