"""The order registry port: the gateway's own durable record of every order's channel,
its history, and users' token revocations. It holds the *desired* state; the sync worker
(:mod:`gateway.outbox`) makes Stream match it.

Rows are the outbox: an order or revocation whose ``sync_state`` is pending is due for the
worker at its ``next_attempt_at``; workers claim due rows with a lease.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from gateway.domain import OrderChannel, OrderEvent, Revocation
from gateway.lifecycle import Change

__all__ = [
    "ClaimedOrder",
    "ClaimedRevocation",
    "OrderRegistry",
    "PendingStats",
    "Transition",
]

Transition = Callable[[OrderChannel], Change | None]
"""A pure function from the recorded channel to its change (``None``: nothing to do)."""


@dataclass(frozen=True, slots=True)
class PendingStats:
    """How far Stream is behind the registry: pending orders and revocations, and since
    when the oldest of them has waited."""

    count: int
    oldest_change_time: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedOrder:
    """A pending order claimed for syncing, with how many attempts failed before."""

    channel: OrderChannel
    failed_attempts: int


@dataclass(frozen=True, slots=True)
class ClaimedRevocation:
    """A pending revocation claimed for syncing, with how many attempts failed before."""

    revocation: Revocation
    failed_attempts: int


class OrderRegistry(Protocol):
    """Durable store of order channels. Every write is committed before it returns."""

    async def ensure(
        self, channel: OrderChannel, event: OrderEvent, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        """Record ``channel`` (with its ``created`` ``event``) unless its order exists;
        return the stored one and whether this call created it. An existing order is
        returned as stored, whoever its participants are (the service layer decides what
        a mismatch means).

        A created row is claimed for ``claim_for`` so the caller can sync it inline
        without the background worker racing it.

        Raises:
            UnavailableError: the store cannot be reached.
        """
        ...

    async def get(self, order_id: str) -> OrderChannel | None:
        """The order's channel, or ``None``."""
        ...

    async def history(self, order_id: str) -> list[OrderEvent]:
        """The order's events, oldest first (empty for an unknown order)."""
        ...

    async def change(
        self, order_id: str, transition: Transition, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        """Apply ``transition`` to the recorded channel in one transaction: write the
        changed channel (pending, due now, claimed for ``claim_for``) and its events.
        Returns the channel afterwards and whether it changed. A transition that raises
        leaves nothing written.

        Raises:
            OrderNotFoundError: no such order.
            UnavailableError: the store cannot be reached.
        """
        ...

    async def mark_synced(self, order_id: str, version: int) -> OrderChannel:
        """Record that Stream matches ``version`` of the order and release any claim; a
        newer version stays pending. Returns the channel as recorded afterwards."""
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

    async def claim(self, order_id: str, *, lease: timedelta) -> ClaimedOrder | None:
        """Claim one order for ``lease`` if it is pending, due and unclaimed; else ``None``."""
        ...

    async def resync(self, order_ids: Sequence[str]) -> int:
        """Make these orders pending and due now (the outbox repairs them); returns how
        many exist."""
        ...

    async def orders(self, *, after: str, limit: int) -> list[OrderChannel]:
        """Up to ``limit`` orders with ids greater than ``after``, by order id."""
        ...

    async def revoke(
        self, user_id: str, revoke_time: datetime, *, claim_for: timedelta
    ) -> Revocation:
        """Record that the user's tokens issued before ``revoke_time`` must stop working
        (an earlier recorded time is moved forward, never back); pending, due now,
        claimed for ``claim_for``."""
        ...

    async def mark_revocation_synced(self, user_id: str, revoke_time: datetime) -> Revocation:
        """Record that Stream has ``revoke_time`` for the user (a later time stays
        pending); release the claim."""
        ...

    async def record_revocation_failure(
        self, user_id: str, *, retry_at: datetime, error: str
    ) -> None:
        """Record a failed revocation attempt, release the claim, retry at ``retry_at``."""
        ...

    async def claim_pending_revocations(
        self, *, limit: int, lease: timedelta
    ) -> list[ClaimedRevocation]:
        """Like :meth:`claim_pending`, for revocations."""
        ...

    async def pending_revocations(self) -> list[Revocation]:
        """Every revocation Stream does not have yet."""
        ...

    async def pending_stats(self) -> PendingStats:
        """Count pending orders and revocations, and the oldest one's change time."""
        ...

    async def check(self) -> None:
        """Readiness: return only if the store can be read now (and has not reported
        damage lately).

        Raises:
            UnavailableError: it cannot.
        """
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...
