"""In-memory fakes of the ports, for unit tests (no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.chat import ChatBackendError
from gateway.domain import OrderChannel, SyncState
from gateway.registry import ClaimedOrder, PendingStats


class FakeClock:
    """A settable clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeRegistry:
    """:class:`gateway.registry.OrderRegistry` in a dict."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.rows: dict[str, OrderChannel] = {}
        self.failures: dict[str, int] = {}
        self.next_attempt: dict[str, datetime] = {}
        self.claimed_until: dict[str, datetime] = {}
        self.errors: dict[str, str] = {}

    async def ensure(
        self, channel: OrderChannel, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        existing = self.rows.get(channel.order_id)
        if existing is not None:
            return existing, False
        self.rows[channel.order_id] = channel
        self.failures[channel.order_id] = 0
        self.next_attempt[channel.order_id] = self.clock()
        self.claimed_until[channel.order_id] = self.clock() + claim_for
        return channel, True

    async def get(self, order_id: str) -> OrderChannel | None:
        return self.rows.get(order_id)

    async def mark_synced(self, order_id: str) -> OrderChannel:
        synced = replace(self.rows[order_id], sync_state=SyncState.SYNCED)
        self.rows[order_id] = synced
        self.claimed_until[order_id] = datetime.min.replace(tzinfo=UTC)
        return synced

    async def record_failure(self, order_id: str, *, retry_at: datetime, error: str) -> None:
        self.failures[order_id] += 1
        self.next_attempt[order_id] = retry_at
        self.claimed_until[order_id] = datetime.min.replace(tzinfo=UTC)
        self.errors[order_id] = error

    async def claim_pending(self, *, limit: int, lease: timedelta) -> list[ClaimedOrder]:
        now = self.clock()
        due = [
            c
            for c in self.rows.values()
            if c.sync_state is SyncState.PENDING
            and self.next_attempt[c.order_id] <= now
            and self.claimed_until[c.order_id] <= now
        ][:limit]
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

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_with: ChatBackendError | None = None
        self.channels: dict[str, tuple[str, str]] = {}

    async def ensure_channel(self, channel: OrderChannel) -> None:
        self.calls.append(channel.order_id)
        if self.fail_with is not None:
            raise self.fail_with
        self.channels[channel.cid] = channel.member_ids

    async def close(self) -> None:
        return None
