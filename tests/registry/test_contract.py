"""The OrderRegistry contract, run against every implementation: the SQLite and PostgreSQL
adapters, and the in-memory fake the unit tests use.

Each test gets a fresh database of the parametrized kind (for the fake, one shared set of
rows) and a settable clock, so due times and leases are exact. ``registries.open()`` may be
called more than once per test to stand for several processes (replicas) on one database.
What only a real database can show (rows read with SQL, schema migrations) is checked by
the tests marked ``on_a_database``, which run on SQLite and PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from gateway import lifecycle
from gateway.domain import (
    EventAction,
    InvalidArgumentError,
    OrderChannel,
    OrderNotFoundError,
    OrderState,
    Participant,
    SyncState,
)
from gateway.lifecycle import Change
from gateway.registry import OrderRegistry
from gateway.registry.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from gateway.registry.postgres import PostgresRegistry
from gateway.registry.sqlite import SqliteRegistry
from tests.helpers.builders import creation, order_channel
from tests.helpers.clock import FakeClock
from tests.helpers.fakes import FakeRegistry

LEASE = timedelta(seconds=30)
NO_CLAIM = timedelta(0)

POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
on_a_database = pytest.mark.parametrize("database", ["sqlite", POSTGRES], indirect=True)
"""Run a test on the real databases only (it reads them with SQL)."""


class Database:
    """Where the test's registries live, and raw access to it for checks."""

    def __init__(self, kind: str, location: str = "") -> None:
        self.kind = kind
        self.location = location

    def scalar(self, query: str) -> object:
        assert self.kind != "fake", "SQL needs a real database: mark the test on_a_database"
        if self.kind == "sqlite":
            with sqlite3.connect(self.location) as conn:
                return conn.execute(query).fetchone()[0]
        with psycopg.connect(self.location) as pg:
            row = pg.execute(query.encode()).fetchone()
            assert row is not None
            return row[0]

    def versions(self) -> list[int]:
        assert self.kind != "fake", "SQL needs a real database: mark the test on_a_database"
        if self.kind == "sqlite":
            with sqlite3.connect(self.location) as conn:
                rows = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        else:
            with psycopg.connect(self.location) as pg:
                rows = pg.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    @property
    def known_versions(self) -> list[int]:
        migrations = SQLITE_MIGRATIONS if self.kind == "sqlite" else POSTGRES_MIGRATIONS
        return [version for version, _ in migrations]


@pytest.fixture(params=["fake", "sqlite", POSTGRES])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "fake":
        return Database("fake")
    if request.param == "sqlite":
        return Database("sqlite", str(tmp_path / "registry.db"))
    return Database("postgres", request.getfixturevalue("pg_url"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Registries:
    """Opens registries on the test's database (each one stands for a process)."""

    def __init__(self, database: Database, clock: FakeClock) -> None:
        self._database = database
        self._clock = clock
        self._fake_rows = FakeRegistry(clock)  # the fake's "database"
        self.opened: list[OrderRegistry] = []

    async def open(self) -> OrderRegistry:
        registry: OrderRegistry
        if self._database.kind == "fake":
            registry = self._fake_rows.replica()
        elif self._database.kind == "sqlite":
            registry = await SqliteRegistry.open(self._database.location, clock=self._clock)
        else:
            registry = await PostgresRegistry.open(
                self._database.location, clock=self._clock, pool_size=5
            )
        self.opened.append(registry)
        return registry

    async def close(self, registry: OrderRegistry) -> None:
        self.opened.remove(registry)
        await registry.close()


@pytest.fixture
async def registries(database: Database, clock: FakeClock) -> AsyncIterator[Registries]:
    opened = Registries(database, clock)
    yield opened
    for registry in list(opened.opened):
        await opened.close(registry)


@pytest.fixture
async def registry(registries: Registries) -> OrderRegistry:
    return await registries.open()


def order(
    order_id: str, clock: FakeClock, *, buyer: str = "buyer-1", seller: str = "seller-1"
) -> OrderChannel:
    """An order with every participant field set (they must round-trip), created now."""
    return order_channel(
        order_id,
        buyer=Participant(buyer, "Ana Buyer", "https://cdn.example.com/a.png"),
        seller=Participant(seller, "Sam Seller"),
        create_time=clock(),
    )


async def claimed_ids(registry: OrderRegistry, limit: int = 100) -> list[str]:
    return sorted(
        c.channel.order_id for c in await registry.claim_pending(limit=limit, lease=LEASE)
    )


# -- ensure / get ---------------------------------------------------------------------------


async def test_ensure_creates_then_get_returns_it(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    proposed = order("o-1", clock)
    stored, created = await registry.ensure(proposed, creation(clock()), claim_for=NO_CLAIM)
    assert created
    assert stored == proposed
    assert await registry.get("o-1") == proposed


async def test_get_of_an_unknown_order_is_none(registry: OrderRegistry) -> None:
    assert await registry.get("o-unknown") is None


async def test_ensure_is_idempotent(registry: OrderRegistry, clock: FakeClock) -> None:
    first, _ = await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    clock.advance(60)
    again = order("o-1", clock)
    stored, created = await registry.ensure(again, creation(clock()), claim_for=NO_CLAIM)
    assert not created
    assert stored == first  # the original row, not the repeat's create_time
    assert (await registry.pending_stats()).count == 1


CONFLICTS = [{"seller": "mallory"}, {"buyer": "mallory"}]


@pytest.mark.parametrize("other", CONFLICTS)
async def test_ensure_conflict_changes_nothing(
    registry: OrderRegistry, clock: FakeClock, other: dict[str, str]
) -> None:
    first, _ = await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    stored, created = await registry.ensure(
        order("o-1", clock, **other), creation(clock()), claim_for=NO_CLAIM
    )
    assert (stored, created) == (first, False)  # the recorded order, whatever was proposed
    assert await registry.get("o-1") == first


@on_a_database
@pytest.mark.parametrize("other", CONFLICTS)
async def test_ensure_conflict_stores_one_row(
    registry: OrderRegistry, clock: FakeClock, database: Database, other: dict[str, str]
) -> None:
    await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    await registry.ensure(order("o-1", clock, **other), creation(clock()), claim_for=NO_CLAIM)
    assert database.scalar("SELECT count(*) FROM orders") == 1


async def _race_200_ensures(
    registries: Registries, clock: FakeClock
) -> list[tuple[OrderChannel, bool]]:
    # Two registries stand for two processes racing on one database.
    replicas = [await registries.open(), await registries.open()]
    return await asyncio.gather(
        *(
            replicas[i % 2].ensure(order("o-race", clock), creation(clock()), claim_for=NO_CLAIM)
            for i in range(200)
        )
    )


async def test_200_concurrent_ensures_create_exactly_once(
    registries: Registries, clock: FakeClock
) -> None:
    results = await _race_200_ensures(registries, clock)
    assert sum(created for _, created in results) == 1
    assert {stored for stored, _ in results} == {results[0][0]}


@on_a_database
async def test_200_concurrent_ensures_store_one_row(
    registries: Registries, clock: FakeClock, database: Database
) -> None:
    await _race_200_ensures(registries, clock)
    assert database.scalar("SELECT count(*) FROM orders") == 1


# -- claims, leases, retries ----------------------------------------------------------------


async def test_claim_respects_due_time_and_the_creation_claim(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.ensure(order("o-free", clock), creation(clock()), claim_for=NO_CLAIM)
    # Claimed at creation for an inline attempt: the worker must not race it.
    await registry.ensure(
        order("o-inline", clock), creation(clock()), claim_for=timedelta(seconds=7)
    )
    assert await claimed_ids(registry) == ["o-free"]
    clock.advance(6)
    assert await claimed_ids(registry) == []
    clock.advance(2)
    assert await claimed_ids(registry) == ["o-inline"]


async def test_claim_holds_for_its_lease_then_expires(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    assert await claimed_ids(registry) == ["o-1"]
    clock.advance(LEASE.total_seconds() - 1)
    assert await claimed_ids(registry) == []
    # The claimer died without recording anything: after the lease it is claimable again.
    clock.advance(2)
    [again] = await registry.claim_pending(limit=10, lease=LEASE)
    assert again.channel.order_id == "o-1" and again.failed_attempts == 0


async def test_claim_limit_and_order_by_due_time(registry: OrderRegistry, clock: FakeClock) -> None:
    for i in range(5):
        await registry.ensure(order(f"o-{i}", clock), creation(clock()), claim_for=NO_CLAIM)
        clock.advance(1)
    assert await claimed_ids(registry, limit=2) == ["o-0", "o-1"]
    assert await claimed_ids(registry, limit=10) == ["o-2", "o-3", "o-4"]


async def test_record_failure_counts_attempts_and_schedules_retry(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    assert await claimed_ids(registry) == ["o-1"]
    await registry.record_failure(
        "o-1", retry_at=clock() + timedelta(seconds=10), error="stream 503 " + "x" * 600
    )
    clock.advance(9)
    assert await claimed_ids(registry) == []  # released, but not due yet
    clock.advance(2)
    [claimed] = await registry.claim_pending(limit=10, lease=LEASE)
    assert claimed.failed_attempts == 1
    await registry.record_failure("o-1", retry_at=clock(), error="again")
    [claimed] = await registry.claim_pending(limit=10, lease=LEASE)
    assert claimed.failed_attempts == 2


@on_a_database
async def test_record_failure_stores_the_last_error(
    registry: OrderRegistry, clock: FakeClock, database: Database
) -> None:
    await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    await registry.record_failure("o-1", retry_at=clock(), error="stream 503 " + "x" * 600)
    await registry.record_failure("o-1", retry_at=clock(), error="again")
    assert database.scalar("SELECT last_error FROM orders") == "again"


async def test_mark_synced_releases_and_stops_retries(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    await registry.ensure(order("o-2", clock), creation(clock()), claim_for=NO_CLAIM)
    assert await claimed_ids(registry) == ["o-1", "o-2"]
    synced = await registry.mark_synced("o-1", 1)
    assert synced.sync_state is SyncState.SYNCED
    assert (await registry.get("o-1")) == synced
    # A late failure report for a synced order changes nothing.
    await registry.record_failure("o-1", retry_at=clock(), error="late")
    clock.advance(LEASE.total_seconds() + 1)
    assert await claimed_ids(registry) == ["o-2"]
    assert (await registry.get("o-1")) == synced


async def test_mark_synced_of_an_unknown_order_is_not_found(registry: OrderRegistry) -> None:
    with pytest.raises(OrderNotFoundError):
        await registry.mark_synced("o-unknown", 1)


async def test_pending_stats(registry: OrderRegistry, clock: FakeClock) -> None:
    empty = await registry.pending_stats()
    assert (empty.count, empty.oldest_change_time) == (0, None)
    first = order("o-1", clock)
    await registry.ensure(first, creation(clock()), claim_for=NO_CLAIM)
    clock.advance(5)
    await registry.ensure(order("o-2", clock), creation(clock()), claim_for=NO_CLAIM)
    stats = await registry.pending_stats()
    assert stats.count == 2
    assert stats.oldest_change_time is not None
    assert abs((stats.oldest_change_time - first.create_time).total_seconds()) < 1e-3
    await registry.mark_synced("o-1", 1)
    assert (await registry.pending_stats()).count == 1


async def test_concurrent_claimers_never_share_an_order(
    registries: Registries, clock: FakeClock
) -> None:
    replicas = [await registries.open(), await registries.open()]
    for i in range(60):
        await replicas[0].ensure(order(f"o-{i:02}", clock), creation(clock()), claim_for=NO_CLAIM)
    claims: list[str] = []

    async def claimer(registry: OrderRegistry) -> None:
        for _ in range(100):  # bounded; stops as soon as nothing is left
            batch = await registry.claim_pending(limit=3, lease=LEASE)
            if not batch:
                return
            claims.extend(c.channel.order_id for c in batch)

    # Eight claimers across two "replicas", all at once; the clock stands still, so no
    # lease expires and any order seen twice would be a double claim.
    await asyncio.gather(*(claimer(replicas[i % 2]) for i in range(8)))
    assert sorted(claims) == [f"o-{i:02}" for i in range(60)]


# -- migrations -----------------------------------------------------------------------------


async def test_orders_survive_a_reopen(registries: Registries, clock: FakeClock) -> None:
    first = await registries.open()
    await first.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    await registries.close(first)
    again = await registries.open()
    assert (await again.get("o-1")) is not None


@on_a_database
async def test_migrations_are_idempotent_on_reopen(
    registries: Registries, database: Database
) -> None:
    await registries.close(await registries.open())
    await registries.open()
    assert database.versions() == database.known_versions


async def test_concurrent_opens_share_one_database(
    registries: Registries, clock: FakeClock
) -> None:
    replicas = await asyncio.gather(*(registries.open() for _ in range(4)))
    _, created = await replicas[0].ensure(
        order("o-1", clock), creation(clock()), claim_for=NO_CLAIM
    )
    assert created
    assert (await replicas[3].get("o-1")) is not None


@on_a_database
async def test_concurrent_opens_on_a_fresh_database_migrate_once(
    registries: Registries, database: Database
) -> None:
    await asyncio.gather(*(registries.open() for _ in range(4)))
    assert database.versions() == database.known_versions


# -- history and changes (the order's life) ---------------------------------------------------


def closing(clock: FakeClock, reason: str = "done") -> Callable[[OrderChannel], Change | None]:
    def close(channel: OrderChannel) -> Change | None:
        return lifecycle.close(channel, now=clock(), service="order-service", reason=reason)

    return close


def disputing(clock: FakeClock, agent: str) -> Callable[[OrderChannel], Change | None]:
    def dispute(channel: OrderChannel) -> Change | None:
        return lifecycle.open_dispute(
            channel, Participant(agent, "Sue"), now=clock(), service="support-tool", reason="r"
        )

    return dispute


async def test_history_starts_with_the_creation(registry: OrderRegistry, clock: FakeClock) -> None:
    await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)  # a repeat
    history = await registry.history("o-1")
    assert [(e.action, e.service) for e in history] == [(EventAction.CREATED, "order-service")]
    assert await registry.history("o-unknown") == []


async def test_a_change_is_recorded_with_its_events_pending_and_claimed(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    await registry.mark_synced("o-1", 1)
    clock.advance(10)
    changed, did = await registry.change(
        "o-1", disputing(clock, "sue-1"), claim_for=timedelta(seconds=5)
    )
    assert did and changed.state is OrderState.DISPUTED and changed.version == 2
    assert changed.sync_state is SyncState.PENDING and changed.agent_ids == ("sue-1",)
    assert await registry.get("o-1") == changed
    history = await registry.history("o-1")
    assert [(e.action, e.agent_user_id) for e in history] == [
        (EventAction.CREATED, ""),
        (EventAction.DISPUTE_OPENED, "sue-1"),
    ]
    assert history[1].time == clock() and history[1].reason == "r"
    assert await claimed_ids(registry) == []  # claimed for the inline attempt
    clock.advance(6)
    assert await claimed_ids(registry) == ["o-1"]


async def test_a_change_that_already_holds_writes_nothing(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    first, _ = await registry.change("o-1", closing(clock), claim_for=NO_CLAIM)
    again, did = await registry.change("o-1", closing(clock, "twice"), claim_for=NO_CLAIM)
    assert not did and again == first
    assert len(await registry.history("o-1")) == 2


async def test_a_refused_change_writes_nothing(registry: OrderRegistry, clock: FakeClock) -> None:
    stored, _ = await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    with pytest.raises(InvalidArgumentError):
        await registry.change("o-1", disputing(clock, "buyer-1"), claim_for=NO_CLAIM)
    assert await registry.get("o-1") == stored
    assert len(await registry.history("o-1")) == 1


async def test_changing_an_unknown_order_is_not_found(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    with pytest.raises(OrderNotFoundError):
        await registry.change("o-unknown", closing(clock), claim_for=NO_CLAIM)


async def test_syncing_an_older_version_leaves_the_newer_pending(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.ensure(order("o-1", clock), creation(clock()), claim_for=NO_CLAIM)
    await registry.change("o-1", closing(clock), claim_for=NO_CLAIM)  # version 2
    stale = await registry.mark_synced("o-1", 1)  # a sync of version 1 finished late
    assert stale.sync_state is SyncState.PENDING and stale.version == 2
    fresh = await registry.mark_synced("o-1", 2)
    assert fresh.sync_state is SyncState.SYNCED and fresh.frozen


async def test_claim_one_order_only_when_due_and_free(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.ensure(order("o-1", clock), creation(clock()), claim_for=timedelta(seconds=5))
    assert await registry.claim("o-1", lease=LEASE) is None  # held for its inline attempt
    clock.advance(6)
    claimed = await registry.claim("o-1", lease=LEASE)
    assert claimed is not None and claimed.channel.order_id == "o-1"
    assert await registry.claim("o-1", lease=LEASE) is None  # now ours
    await registry.record_failure("o-1", retry_at=clock() + timedelta(seconds=60), error="x")
    assert await registry.claim("o-1", lease=LEASE) is None  # backing off
    await registry.mark_synced("o-1", 1)
    clock.advance(120)
    assert await registry.claim("o-1", lease=LEASE) is None  # nothing to do
    assert await registry.claim("o-unknown", lease=LEASE) is None


async def test_resync_makes_orders_pending_and_due(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    for name in ("o-1", "o-2"):
        await registry.ensure(order(name, clock), creation(clock()), claim_for=NO_CLAIM)
        await registry.mark_synced(name, 1)
    assert await registry.resync(["o-1", "o-unknown"]) == 1
    resynced = await registry.get("o-1")
    assert resynced is not None and resynced.sync_state is SyncState.PENDING
    assert resynced.version == 2
    assert await claimed_ids(registry) == ["o-1"]


async def test_orders_page_by_id(registry: OrderRegistry, clock: FakeClock) -> None:
    for i in (3, 1, 2, 5, 4):
        await registry.ensure(order(f"o-{i}", clock), creation(clock()), claim_for=NO_CLAIM)
    first = await registry.orders(after="", limit=2)
    rest = await registry.orders(after=first[-1].order_id, limit=10)
    assert [c.order_id for c in first + rest] == ["o-1", "o-2", "o-3", "o-4", "o-5"]
    assert await registry.orders(after="o-5", limit=10) == []


# -- revocations ----------------------------------------------------------------------------


async def test_a_revocation_is_pending_until_marked_and_only_moves_forward(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    at = clock()
    first = await registry.revoke("u-1", at, claim_for=NO_CLAIM)
    assert (first.user_id, first.revoke_time, first.sync_state) == ("u-1", at, SyncState.PENDING)
    earlier = await registry.revoke("u-1", at - timedelta(seconds=30), claim_for=NO_CLAIM)
    assert earlier.revoke_time == at  # never moved back
    assert [r.user_id for r in await registry.pending_revocations()] == ["u-1"]
    later = await registry.revoke("u-1", at + timedelta(seconds=5), claim_for=NO_CLAIM)
    stale = await registry.mark_revocation_synced("u-1", at)  # the older one reached Stream
    assert stale.sync_state is SyncState.PENDING and stale.revoke_time == later.revoke_time
    done = await registry.mark_revocation_synced("u-1", later.revoke_time)
    assert done.sync_state is SyncState.SYNCED
    assert await registry.pending_revocations() == []


async def test_revocations_are_claimed_retried_and_counted(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.revoke("u-1", clock(), claim_for=timedelta(seconds=5))
    await registry.revoke("u-2", clock(), claim_for=NO_CLAIM)
    assert (await registry.pending_stats()).count == 2
    claimed = await registry.claim_pending_revocations(limit=10, lease=LEASE)
    assert [c.revocation.user_id for c in claimed] == ["u-2"]
    await registry.record_revocation_failure(
        "u-2", retry_at=clock() + timedelta(seconds=10), error="down"
    )
    clock.advance(11)
    claimed = await registry.claim_pending_revocations(limit=10, lease=LEASE)
    assert sorted((c.revocation.user_id, c.failed_attempts) for c in claimed) == [
        ("u-1", 0),
        ("u-2", 1),
    ]
