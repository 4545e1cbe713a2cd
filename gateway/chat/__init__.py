"""The chat backend port: what the gateway needs from GetStream.io Chat."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gateway.domain import OrderChannel

__all__ = ["ChannelSnapshot", "ChatBackend", "ChatBackendError", "MODERATOR", "MEMBER"]

MODERATOR = "channel_moderator"
"""Stream ``channel_role`` of support agents."""
MEMBER = "channel_member"
"""Stream ``channel_role`` of buyers and sellers (Stream's default)."""


class ChatBackendError(Exception):
    """The chat backend could not finish a call.

    Attributes:
        transient: retrying later may succeed (timeouts, 429, 5xx, connection errors).
        retry_after_s: the earliest sensible retry, when the backend said (rate limits).
    """

    def __init__(self, message: str, *, transient: bool, retry_after_s: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    """What the chat provider holds for one channel."""

    cid: str
    order_id: str | None
    """The channel's ``order_id`` custom field, if set."""
    members: Mapping[str, str] = field(default_factory=dict)
    """Member user id -> ``channel_role``."""
    frozen: bool = False


class ChatBackend(Protocol):
    """Makes the chat provider hold each order's channel exactly as the registry says."""

    async def sync_channel(self, channel: OrderChannel) -> None:
        """Upsert the users, create the channel if needed, and make it match ``channel``:
        members exactly the buyer, the seller and the support agents (agents with
        :data:`MODERATOR`), frozen as its state says, ``order_id`` in its data. Keeps the
        history; never deletes a channel. Idempotent.

        Raises:
            ChatBackendError: the provider failed; ``transient`` says whether to retry.
        """
        ...

    async def revoke_tokens(self, user_id: str, before: datetime) -> None:
        """Make the provider refuse the user's tokens issued before ``before``.

        Raises:
            ChatBackendError: the provider failed.
        """
        ...

    async def inspect(self, channels: Sequence[OrderChannel]) -> dict[str, ChannelSnapshot]:
        """What the provider holds for these orders' channels, by cid (absent: none).
        At most 30 channels per call.

        Raises:
            ChatBackendError: the provider failed.
        """
        ...

    def order_channels(self, channel_type: str) -> AsyncIterator[ChannelSnapshot]:
        """Every channel of ``channel_type`` that carries an ``order_id``, oldest first.

        Raises:
            ChatBackendError: the provider failed.
        """
        ...

    @property
    def calls(self) -> int:
        """Requests sent to the provider so far."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
