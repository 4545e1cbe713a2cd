"""The order registry port: the gateway's own durable record of every order's channel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from gateway.domain import OrderChannel

__all__ = ["ClaimedOrder", "OrderRegistry", "PendingStats"]


@dataclass(frozen=True, slots=True)
class PendingStats:
    """How far Stream is behind the registry."""

    count: int
    oldest_create_time: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedOrder:
    """A pending order claimed for syncing, with how many attempts failed before."""

    channel: OrderChannel
    failed_attempts: int


class OrderRegistry(Protocol):
    """Durable store of order channels. Every write is committed before it returns."""

    async def ensure(
        self, channel: OrderChannel, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        """Record ``channel`` unless its order exists; return the stored one and whether
        this call created it. An existing order is returned as stored, whoever its
        participants are (the service layer decides what a mismatch means).

        A created row is claimed for ``claim_for`` so the caller can sync it inline
        without the background worker racing it.

        Raises:
            UnavailableError: the store cannot be reached.
        """
        ...

    async def get(self, order_id: str) -> OrderChannel | None:
        """The order's channel, or ``None``."""
        ...

    async def mark_synced(self, order_id: str) -> OrderChannel:
        """Record that Stream has the channel with both members; release any claim."""
        ...

    async def record_failure(self, order_id: str, *, retry_at: datetime, error: str) -> None:
        """Record a failed sync attempt, release the claim, retry no earlier than ``retry_at``."""
        ...

    async def claim_pending(self, *, limit: int, lease: timedelta) -> list[ClaimedOrder]:
        """Claim up to ``limit`` pending orders that are due and unclaimed, for ``lease``.

        A claim that is not released within its lease (the claimer died) expires, and the
        order can be claimed again.
        """
        ...

    async def pending_stats(self) -> PendingStats:
        """Count pending orders and the oldest one's creation time."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...
