"""PostgreSQL-only registry behaviour: SKIP LOCKED claims and database outages."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import tests.helpers.pg
from gateway.app import open_registry
from gateway.config import ConfigError
from gateway.domain import UnavailableError
from gateway.registry.postgres import PostgresRegistry
from tests.helpers.builders import creation, order_channel
from tests.helpers.gateways import SettingsFactory
from tests.helpers.pg import PostgresServer
from tests.helpers.polling import eventually

pytestmark = pytest.mark.postgres

LEASE = timedelta(seconds=30)
TIMEOUT_S = 1.0


async def test_claim_skips_rows_locked_by_another_transaction(pg_url: str) -> None:
    registry = await PostgresRegistry.open(pg_url)
    try:
        for order_id in ("o-1", "o-2", "o-3"):
            await registry.ensure(order_channel(order_id), creation(), claim_for=timedelta(0))
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
        await registry.ensure(order_channel("o-before"), creation(), claim_for=timedelta(0))
        pg_private.stop("immediate")

        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: registry.ensure(order_channel("o-during"), creation(), claim_for=timedelta(0)),
            lambda: registry.get("o-before"),
            lambda: registry.claim_pending(limit=10, lease=LEASE),
            lambda: registry.mark_synced("o-before", 1),
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

        async def answers() -> bool:
            try:
                await registry.get("o-before")
            except UnavailableError:
                return False
            return True

        await eventually(answers, timeout_s=20, interval_s=0.1, message="still unavailable")
        recovery_s = time.monotonic() - started
        assert recovery_s < 10.0
        # Nothing was written while the database was down; what was committed survived.
        assert await registry.get("o-during") is None
        assert await registry.get("o-before") is not None
        _, created = await registry.ensure(
            order_channel("o-after"), creation(), claim_for=timedelta(0)
        )
        assert created
    finally:
        await registry.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_composition_root_selects_postgres_for_postgres_urls(
    pg_url: str, make_settings: SettingsFactory, scheme: str
) -> None:
    url = pg_url.replace("postgresql://", f"{scheme}://", 1)
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
    monkeypatch.setattr(tests.helpers.pg, "find_bindir", lambda: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="initdb"):
        tests.helpers.pg._bindir_or_skip()
