"""PostgreSQL-only registry behaviour: SKIP LOCKED claims and database outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import tests.pg
from gateway.app import open_registry
from gateway.config import ConfigError
from gateway.domain import OrderChannel, Participant, SyncState, UnavailableError
from gateway.registry.postgres import PostgresRegistry
from tests.conftest import SettingsFactory
from tests.pg import PostgresServer

pytestmark = pytest.mark.postgres

LEASE = timedelta(seconds=30)
TIMEOUT_S = 1.0


def order(order_id: str) -> OrderChannel:
    return OrderChannel(
        order_id=order_id,
        channel_type="messaging",
        channel_id=f"order-{order_id}",
        buyer=Participant("buyer-1"),
        seller=Participant("seller-1"),
        sync_state=SyncState.PENDING,
        create_time=datetime.now(UTC),
    )


async def test_claim_skips_rows_locked_by_another_transaction(pg_url: str) -> None:
    registry = await PostgresRegistry.open(pg_url)
    try:
        for order_id in ("o-1", "o-2", "o-3"):
            await registry.ensure(order(order_id), claim_for=timedelta(0))
        async with await psycopg.AsyncConnection.connect(pg_url) as other:
            # Another replica is in the middle of claiming o-2.
            await other.execute("SELECT 1 FROM orders WHERE order_id = 'o-2' FOR UPDATE")
            started = time.monotonic()
            claimed = await registry.claim_pending(limit=10, lease=LEASE)
            assert time.monotonic() - started < 0.5  # skipped, not waited for
            assert sorted(c.channel.order_id for c in claimed) == ["o-1", "o-3"]
            await other.rollback()
        [late] = await registry.claim_pending(limit=10, lease=LEASE)
        assert late.channel.order_id == "o-2"
    finally:
        await registry.close()


async def test_open_fails_fast_when_the_database_is_down(pg_private: PostgresServer) -> None:
    pg_private.stop()
    started = time.monotonic()
    with pytest.raises(UnavailableError):
        await PostgresRegistry.open(pg_private.url(), timeout_s=TIMEOUT_S, startup_timeout_s=1.0)
    assert time.monotonic() - started < 3.0


async def test_outage_fails_fast_then_recovers(pg_private: PostgresServer) -> None:
    url = pg_private.create_database()
    registry = await PostgresRegistry.open(url, timeout_s=TIMEOUT_S)
    try:
        await registry.ensure(order("o-before"), claim_for=timedelta(0))
        pg_private.stop("immediate")

        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: registry.ensure(order("o-during"), claim_for=timedelta(0)),
            lambda: registry.get("o-before"),
            lambda: registry.claim_pending(limit=10, lease=LEASE),
            lambda: registry.mark_synced("o-before"),
            lambda: registry.record_failure("o-before", retry_at=datetime.now(UTC), error="x"),
            lambda: registry.pending_stats(),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(UnavailableError):
                await call()
            assert time.monotonic() - started < TIMEOUT_S + 1.0

        pg_private.start()
        started = time.monotonic()
        for _ in range(100):  # bounded: 100 tries, well under 20 s
            try:
                await registry.get("o-before")
                break
            except UnavailableError:
                await asyncio.sleep(0.1)
        recovery_s = time.monotonic() - started
        assert recovery_s < 10.0
        # Nothing was written while the database was down; what was committed survived.
        assert await registry.get("o-during") is None
        assert await registry.get("o-before") is not None
        _, created = await registry.ensure(order("o-after"), claim_for=timedelta(0))
        assert created
    finally:
        await registry.close()


async def test_composition_root_selects_postgres_for_postgres_urls(
    pg_url: str, make_settings: SettingsFactory
) -> None:
    for url in (pg_url, pg_url.replace("postgresql://", "postgres://", 1)):
        settings = make_settings(
            env={
                "CHAT_GATEWAY_DATABASE_URL": url,
                "CHAT_GATEWAY_DATABASE_POOL_SIZE": "3",
                "CHAT_GATEWAY_DATABASE_TIMEOUT": "1.5",
            }
        )
        assert (settings.registry.database_pool_size, settings.registry.database_timeout_s) == (
            3,
            1.5,
        )
        registry = await open_registry(settings.registry)
        try:
            assert isinstance(registry, PostgresRegistry)
            assert await registry.get("o-none") is None
        finally:
            await registry.close()


@pytest.mark.parametrize(
    ("name", "value"),
    [("CHAT_GATEWAY_DATABASE_POOL_SIZE", "0"), ("CHAT_GATEWAY_DATABASE_TIMEOUT", "0")],
)
def test_database_settings_are_validated(
    make_settings: SettingsFactory, name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        make_settings(env={name: value})


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_binaries_fail_in_ci_and_skip_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr(tests.pg, "find_bindir", lambda: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="initdb"):
        tests.pg._bindir_or_skip()
