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
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from gateway.domain import OrderChannel, Participant, SyncState
from gateway.registry import OrderRegistry
from gateway.registry.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from gateway.registry.postgres import PostgresRegistry
from gateway.registry.sqlite import SqliteRegistry
from tests.helpers.builders import order_channel
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
    stored, created = await registry.ensure(proposed, claim_for=NO_CLAIM)
    assert created
    assert stored == proposed
    assert await registry.get("o-1") == proposed


async def test_get_of_an_unknown_order_is_none(registry: OrderRegistry) -> None:
    assert await registry.get("o-unknown") is None


async def test_ensure_is_idempotent(registry: OrderRegistry, clock: FakeClock) -> None:
    first, _ = await registry.ensure(order("o-1", clock), claim_for=NO_CLAIM)
    clock.advance(60)
    again = order("o-1", clock)
    stored, created = await registry.ensure(again, claim_for=NO_CLAIM)
    assert not created
    assert stored == first  # the original row, not the repeat's create_time
    assert (await registry.pending_stats()).count == 1


CONFLICTS = [{"seller": "mallory"}, {"buyer": "mallory"}]


@pytest.mark.parametrize("other", CONFLICTS)
async def test_ensure_conflict_changes_nothing(
    registry: OrderRegistry, clock: FakeClock, other: dict[str, str]
) -> None:
    first, _ = await registry.ensure(order("o-1", clock), claim_for=NO_CLAIM)
    stored, created = await registry.ensure(order("o-1", clock, **other), claim_for=NO_CLAIM)
    assert (stored, created) == (first, False)  # the recorded order, whatever was proposed
    assert await registry.get("o-1") == first


@on_a_database
@pytest.mark.parametrize("other", CONFLICTS)
async def test_ensure_conflict_stores_one_row(
    registry: OrderRegistry, clock: FakeClock, database: Database, other: dict[str, str]
) -> None:
    await registry.ensure(order("o-1", clock), claim_for=NO_CLAIM)
    await registry.ensure(order("o-1", clock, **other), claim_for=NO_CLAIM)
    assert database.scalar("SELECT count(*) FROM orders") == 1


async def _race_200_ensures(
    registries: Registries, clock: FakeClock
) -> list[tuple[OrderChannel, bool]]:
    # Two registries stand for two processes racing on one database.
    replicas = [await registries.open(), await registries.open()]
    return await asyncio.gather(
        *(replicas[i % 2].ensure(order("o-race", clock), claim_for=NO_CLAIM) for i in range(200))
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
    await registry.ensure(order("o-free", clock), claim_for=NO_CLAIM)
    # Claimed at creation for an inline attempt: the worker must not race it.
    await registry.ensure(order("o-inline", clock), claim_for=timedelta(seconds=7))
    assert await claimed_ids(registry) == ["o-free"]
    clock.advance(6)
    assert await claimed_ids(registry) == []
    clock.advance(2)
    assert await claimed_ids(registry) == ["o-inline"]


async def test_claim_holds_for_its_lease_then_expires(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.ensure(order("o-1", clock), claim_for=NO_CLAIM)
    assert await claimed_ids(registry) == ["o-1"]
    clock.advance(LEASE.total_seconds() - 1)
    assert await claimed_ids(registry) == []
    # The claimer died without recording anything: after the lease it is claimable again.
    clock.advance(2)
    [again] = await registry.claim_pending(limit=10, lease=LEASE)
    assert again.channel.order_id == "o-1" and again.failed_attempts == 0


async def test_claim_limit_and_order_by_due_time(registry: OrderRegistry, clock: FakeClock) -> None:
    for i in range(5):
        await registry.ensure(order(f"o-{i}", clock), claim_for=NO_CLAIM)
        clock.advance(1)
    assert await claimed_ids(registry, limit=2) == ["o-0", "o-1"]
    assert await claimed_ids(registry, limit=10) == ["o-2", "o-3", "o-4"]


async def test_record_failure_counts_attempts_and_schedules_retry(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.ensure(order("o-1", clock), claim_for=NO_CLAIM)
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
    await registry.ensure(order("o-1", clock), claim_for=NO_CLAIM)
    await registry.record_failure("o-1", retry_at=clock(), error="stream 503 " + "x" * 600)
    await registry.record_failure("o-1", retry_at=clock(), error="again")
    assert database.scalar("SELECT last_error FROM orders") == "again"


async def test_mark_synced_releases_and_stops_retries(
    registry: OrderRegistry, clock: FakeClock
) -> None:
    await registry.ensure(order("o-1", clock), claim_for=NO_CLAIM)
    await registry.ensure(order("o-2", clock), claim_for=NO_CLAIM)
    assert await claimed_ids(registry) == ["o-1", "o-2"]
    synced = await registry.mark_synced("o-1")
    assert synced.sync_state is SyncState.SYNCED
    assert (await registry.get("o-1")) == synced
    # A late failure report for a synced order changes nothing.
    await registry.record_failure("o-1", retry_at=clock(), error="late")
    clock.advance(LEASE.total_seconds() + 1)
    assert await claimed_ids(registry) == ["o-2"]
    assert (await registry.get("o-1")) == synced


async def test_mark_synced_of_an_unknown_order_is_a_lookup_error(registry: OrderRegistry) -> None:
    with pytest.raises(LookupError):
        await registry.mark_synced("o-unknown")


async def test_pending_stats(registry: OrderRegistry, clock: FakeClock) -> None:
    empty = await registry.pending_stats()
    assert (empty.count, empty.oldest_create_time) == (0, None)
    first = order("o-1", clock)
    await registry.ensure(first, claim_for=NO_CLAIM)
    clock.advance(5)
    await registry.ensure(order("o-2", clock), claim_for=NO_CLAIM)
    stats = await registry.pending_stats()
    assert stats.count == 2
    assert stats.oldest_create_time is not None
    assert abs((stats.oldest_create_time - first.create_time).total_seconds()) < 1e-3
    await registry.mark_synced("o-1")
    assert (await registry.pending_stats()).count == 1


async def test_concurrent_claimers_never_share_an_order(
    registries: Registries, clock: FakeClock
) -> None:
    replicas = [await registries.open(), await registries.open()]
    for i in range(60):
        await replicas[0].ensure(order(f"o-{i:02}", clock), claim_for=NO_CLAIM)
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
    await first.ensure(order("o-1", clock), claim_for=NO_CLAIM)
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
    _, created = await replicas[0].ensure(order("o-1", clock), claim_for=NO_CLAIM)
    assert created
    assert (await replicas[3].get("o-1")) is not None


@on_a_database
async def test_concurrent_opens_on_a_fresh_database_migrate_once(
    registries: Registries, database: Database
) -> None:
    await asyncio.gather(*(registries.open() for _ in range(4)))
    assert database.versions() == database.known_versions
