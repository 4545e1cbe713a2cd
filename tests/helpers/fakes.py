"""In-memory fakes of the gateway's ports, for unit tests (no I/O).

:class:`FakeRegistry` passes the registry contract suite (``tests/registry/test_contract.py``)
like the SQLite and PostgreSQL adapters do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from gateway.chat import ChannelSnapshot, ChatBackendError
from gateway.chat.drift import wanted_members
from gateway.domain import OrderChannel, OrderEvent, OrderNotFoundError, Revocation, SyncState
from gateway.registry import ClaimedOrder, ClaimedRevocation, PendingStats, Transition
from tests.helpers.clock import FakeClock

RELEASED = datetime.min.replace(tzinfo=UTC)
"""``claimed_until`` of a row nobody holds."""


@dataclass
class _Outbox:
    """The outbox columns of one row (an order or a revocation)."""

    due: datetime
    claimed_until: datetime
    failures: int = 0
    error: str | None = None
    changed: datetime = field(default=RELEASED)


@dataclass
class _Tables:
    orders: dict[str, OrderChannel] = field(default_factory=dict)
    order_outbox: dict[str, _Outbox] = field(default_factory=dict)
    events: dict[str, list[OrderEvent]] = field(default_factory=dict)
    revocations: dict[str, Revocation] = field(default_factory=dict)
    revocation_outbox: dict[str, _Outbox] = field(default_factory=dict)


class FakeRegistry:
    """:class:`gateway.registry.OrderRegistry` in dicts.

    :meth:`replica` opens another registry on the same rows, as a second process on one
    database would.
    """

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self._t = _Tables()

    def replica(self) -> FakeRegistry:
        """Another registry sharing this one's rows and clock."""
        other = FakeRegistry(self.clock)
        other._t = self._t
        return other

    @property
    def rows(self) -> dict[str, OrderChannel]:
        """The orders, by order id (tests may read them)."""
        return self._t.orders

    def failures(self, order_id: str) -> int:
        """Failed sync attempts recorded for the order."""
        return self._t.order_outbox[order_id].failures

    def next_attempt(self, order_id: str) -> datetime:
        """When the order is next due."""
        return self._t.order_outbox[order_id].due

    def error(self, order_id: str) -> str | None:
        """The order's last sync error."""
        return self._t.order_outbox[order_id].error

    # -- orders ----------------------------------------------------------------------------

    async def ensure(
        self, channel: OrderChannel, event: OrderEvent, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        existing = self._t.orders.get(channel.order_id)
        if existing is not None:
            return existing, False
        now = self.clock()
        self._t.orders[channel.order_id] = channel
        self._t.order_outbox[channel.order_id] = _Outbox(now, now + claim_for, changed=now)
        self._t.events[channel.order_id] = [event]
        return channel, True

    async def get(self, order_id: str) -> OrderChannel | None:
        return self._t.orders.get(order_id)

    async def history(self, order_id: str) -> list[OrderEvent]:
        return list(self._t.events.get(order_id, []))

    async def change(
        self, order_id: str, transition: Transition, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        stored = self._t.orders.get(order_id)
        if stored is None:
            raise OrderNotFoundError(order_id)
        change = transition(stored)
        if change is None:
            return stored, False
        changed, events = change
        now = self.clock()
        self._t.orders[order_id] = changed
        self._t.order_outbox[order_id] = _Outbox(now, now + claim_for, changed=now)
        self._t.events[order_id].extend(events)
        return changed, True

    async def mark_synced(self, order_id: str, version: int) -> OrderChannel:
        stored = self._t.orders.get(order_id)
        if stored is None:
            raise OrderNotFoundError(order_id)
        if stored.version == version:
            stored = self._t.orders[order_id] = replace(stored, sync_state=SyncState.SYNCED)
            outbox = self._t.order_outbox[order_id]
            outbox.claimed_until, outbox.error, outbox.failures = RELEASED, None, 0
        return stored

    async def record_failure(self, order_id: str, *, retry_at: datetime, error: str) -> None:
        stored = self._t.orders.get(order_id)
        if stored is None or stored.sync_state is not SyncState.PENDING:
            return  # as the databases do: only a pending order's attempts are counted
        outbox = self._t.order_outbox[order_id]
        outbox.failures += 1
        outbox.due, outbox.claimed_until, outbox.error = retry_at, RELEASED, error[:500]

    def _due_orders(self) -> list[OrderChannel]:
        now = self.clock()
        due = [
            c
            for c in self._t.orders.values()
            if c.sync_state is SyncState.PENDING
            and self._t.order_outbox[c.order_id].due <= now
            and self._t.order_outbox[c.order_id].claimed_until <= now
        ]
        return sorted(due, key=lambda c: self._t.order_outbox[c.order_id].due)

    async def claim_pending(self, *, limit: int, lease: timedelta) -> list[ClaimedOrder]:
        claimed = []
        for channel in self._due_orders()[:limit]:
            outbox = self._t.order_outbox[channel.order_id]
            outbox.claimed_until = self.clock() + lease
            claimed.append(ClaimedOrder(channel, outbox.failures))
        return claimed

    async def claim(self, order_id: str, *, lease: timedelta) -> ClaimedOrder | None:
        for channel in self._due_orders():
            if channel.order_id == order_id:
                outbox = self._t.order_outbox[order_id]
                outbox.claimed_until = self.clock() + lease
                return ClaimedOrder(channel, outbox.failures)
        return None

    async def resync(self, order_ids: Sequence[str]) -> int:
        found = 0
        for order_id in order_ids:
            stored = self._t.orders.get(order_id)
            if stored is None:
                continue
            found += 1
            self._t.orders[order_id] = replace(
                stored, sync_state=SyncState.PENDING, version=stored.version + 1
            )
            self._t.order_outbox[order_id].due = self.clock()
        return found

    async def orders(self, *, after: str, limit: int) -> list[OrderChannel]:
        ids = sorted(i for i in self._t.orders if i > after)[:limit]
        return [self._t.orders[i] for i in ids]

    # -- revocations -----------------------------------------------------------------------

    async def revoke(
        self, user_id: str, revoke_time: datetime, *, claim_for: timedelta
    ) -> Revocation:
        now = self.clock()
        known = self._t.revocations.get(user_id)
        if known is not None:
            revoke_time = max(revoke_time, known.revoke_time)
        revocation = Revocation(user_id, revoke_time, SyncState.PENDING)
        self._t.revocations[user_id] = revocation
        self._t.revocation_outbox[user_id] = _Outbox(now, now + claim_for, changed=now)
        return revocation

    async def mark_revocation_synced(self, user_id: str, revoke_time: datetime) -> Revocation:
        stored = self._t.revocations[user_id]
        if stored.revoke_time <= revoke_time:
            stored = self._t.revocations[user_id] = replace(stored, sync_state=SyncState.SYNCED)
            outbox = self._t.revocation_outbox[user_id]
            outbox.claimed_until, outbox.error, outbox.failures = RELEASED, None, 0
        return stored

    async def record_revocation_failure(
        self, user_id: str, *, retry_at: datetime, error: str
    ) -> None:
        stored = self._t.revocations.get(user_id)
        if stored is None or stored.sync_state is not SyncState.PENDING:
            return
        outbox = self._t.revocation_outbox[user_id]
        outbox.failures += 1
        outbox.due, outbox.claimed_until, outbox.error = retry_at, RELEASED, error[:500]

    async def claim_pending_revocations(
        self, *, limit: int, lease: timedelta
    ) -> list[ClaimedRevocation]:
        now = self.clock()
        due = sorted(
            (
                r
                for r in self._t.revocations.values()
                if r.sync_state is SyncState.PENDING
                and self._t.revocation_outbox[r.user_id].due <= now
                and self._t.revocation_outbox[r.user_id].claimed_until <= now
            ),
            key=lambda r: self._t.revocation_outbox[r.user_id].due,
        )[:limit]
        claimed = []
        for revocation in due:
            outbox = self._t.revocation_outbox[revocation.user_id]
            outbox.claimed_until = now + lease
            claimed.append(ClaimedRevocation(revocation, outbox.failures))
        return claimed

    async def pending_revocations(self) -> list[Revocation]:
        pending = (r for r in self._t.revocations.values() if r.sync_state is SyncState.PENDING)
        return sorted(pending, key=lambda r: r.user_id)

    async def pending_stats(self) -> PendingStats:
        changed = [
            self._t.order_outbox[c.order_id].changed
            for c in self._t.orders.values()
            if c.sync_state is SyncState.PENDING
        ] + [
            self._t.revocation_outbox[r.user_id].changed
            for r in self._t.revocations.values()
            if r.sync_state is SyncState.PENDING
        ]
        return PendingStats(count=len(changed), oldest_change_time=min(changed, default=None))

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None


class FakeChatBackend:
    """:class:`gateway.chat.ChatBackend` that records calls and fails on demand."""

    def __init__(self, fail_with: ChatBackendError | None = None) -> None:
        self.synced: list[str] = []
        """Order ids of every ``sync_channel`` call, in order."""
        self.fail_with = fail_with
        self.channels: dict[str, ChannelSnapshot] = {}
        self.revoked: dict[str, datetime] = {}

    @property
    def calls(self) -> int:
        return len(self.synced) + len(self.revoked)

    async def sync_channel(self, channel: OrderChannel) -> None:
        self.synced.append(channel.order_id)
        if self.fail_with is not None:
            raise self.fail_with
        self.channels[channel.cid] = ChannelSnapshot(
            channel.cid, channel.order_id, wanted_members(channel), channel.frozen
        )

    async def revoke_tokens(self, user_id: str, before: datetime) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.revoked[user_id] = before

    async def inspect(self, channels: Sequence[OrderChannel]) -> dict[str, ChannelSnapshot]:
        return {c.cid: self.channels[c.cid] for c in channels if c.cid in self.channels}

    async def order_channels(self, channel_type: str) -> AsyncIterator[ChannelSnapshot]:
        for snapshot in list(self.channels.values()):
            if snapshot.cid.startswith(f"{channel_type}:") and snapshot.order_id:
                yield snapshot

    async def close(self) -> None:
        return None
