"""In-memory fakes of the gateway's ports, for unit tests (no I/O).

:class:`FakeRegistry` passes the registry contract suite (``tests/registry/test_contract.py``)
like the SQLite and PostgreSQL adapters do.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.chat import ChatBackendError
from gateway.domain import OrderChannel, SyncState
from gateway.registry import ClaimedOrder, PendingStats
from tests.helpers.clock import FakeClock

RELEASED = datetime.min.replace(tzinfo=UTC)
"""``claimed_until`` of an order nobody holds."""


class FakeRegistry:
    """:class:`gateway.registry.OrderRegistry` in dicts keyed by order id.

    :meth:`replica` opens another registry on the same rows, as a second process on one
    database would.
    """

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.rows: dict[str, OrderChannel] = {}
        self.failures: dict[str, int] = {}
        self.next_attempt: dict[str, datetime] = {}
        self.claimed_until: dict[str, datetime] = {}
        self.errors: dict[str, str] = {}

    def replica(self) -> FakeRegistry:
        """Another registry sharing this one's rows and clock."""
        other = FakeRegistry(self.clock)
        other.rows, other.failures, other.errors = self.rows, self.failures, self.errors
        other.next_attempt, other.claimed_until = self.next_attempt, self.claimed_until
        return other

    async def ensure(
        self, channel: OrderChannel, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        existing = self.rows.get(channel.order_id)
        if existing is not None:
            return existing, False
        now = self.clock()
        self.rows[channel.order_id] = channel
        self.failures[channel.order_id] = 0
        self.next_attempt[channel.order_id] = now
        self.claimed_until[channel.order_id] = now + claim_for
        return channel, True

    async def get(self, order_id: str) -> OrderChannel | None:
        return self.rows.get(order_id)

    async def mark_synced(self, order_id: str) -> OrderChannel:
        if order_id not in self.rows:
            raise LookupError(order_id)
        synced = replace(self.rows[order_id], sync_state=SyncState.SYNCED)
        self.rows[order_id] = synced
        self.claimed_until[order_id] = RELEASED
        self.errors.pop(order_id, None)
        return synced

    async def record_failure(self, order_id: str, *, retry_at: datetime, error: str) -> None:
        stored = self.rows.get(order_id)
        if stored is None or stored.sync_state is not SyncState.PENDING:
            return  # as the databases do: only a pending order's attempts are counted
        self.failures[order_id] += 1
        self.next_attempt[order_id] = retry_at
        self.claimed_until[order_id] = RELEASED
        self.errors[order_id] = error

    async def claim_pending(self, *, limit: int, lease: timedelta) -> list[ClaimedOrder]:
        now = self.clock()
        due = sorted(
            (
                c
                for c in self.rows.values()
                if c.sync_state is SyncState.PENDING
                and self.next_attempt[c.order_id] <= now
                and self.claimed_until[c.order_id] <= now
            ),
            key=lambda c: self.next_attempt[c.order_id],
        )[:limit]
        for c in due:
            self.claimed_until[c.order_id] = now + lease
        return [ClaimedOrder(c, self.failures[c.order_id]) for c in due]

    async def pending_stats(self) -> PendingStats:
        pending = [c for c in self.rows.values() if c.sync_state is SyncState.PENDING]
        oldest = min((c.create_time for c in pending), default=None)
        return PendingStats(count=len(pending), oldest_create_time=oldest)

    async def close(self) -> None:
        return None


class FakeChatBackend:
    """:class:`gateway.chat.ChatBackend` that records calls and fails on demand."""

    def __init__(self, fail_with: ChatBackendError | None = None) -> None:
        self.calls: list[str] = []
        self.fail_with = fail_with
        self.channels: dict[str, tuple[str, str]] = {}

    async def ensure_channel(self, channel: OrderChannel) -> None:
        self.calls.append(channel.order_id)
        if self.fail_with is not None:
            raise self.fail_with
        self.channels[channel.cid] = channel.member_ids

    async def close(self) -> None:
        return None
