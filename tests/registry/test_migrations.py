"""A registry written by the previous version (schema 1) opens under this one: migration 2
adds the order's life (state, agents, history, revocations) and keeps every order."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from gateway.domain import EventAction, OrderChannel, OrderEvent, OrderState, SyncState
from gateway.registry.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from gateway.registry.postgres import PostgresRegistry
from gateway.registry.sqlite import SqliteRegistry

CREATED = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
V1_ROW = (
    "ord-old", "messaging", "order-ord-old", "buyer-1", "Ana", "", "seller-1", "Sam",
    "https://cdn.example.com/s.png", "synced",
)  # fmt: skip
V1_INSERT = (
    "INSERT INTO orders (order_id, channel_type, channel_id, buyer_user_id, buyer_name, "
    "buyer_image, seller_user_id, seller_name, seller_image, sync_state, create_time, "
    "next_attempt_at) VALUES ({values})"
)


def _check(order: OrderChannel | None, history: list[OrderEvent]) -> None:
    assert order is not None
    assert order.state is OrderState.OPEN and order.agents == ()
    assert order.sync_state is SyncState.SYNCED and order.version == 1
    assert order.update_time == CREATED == order.create_time
    assert [(e.action, e.service, e.time) for e in history] == [(EventAction.CREATED, "", CREATED)]


async def test_sqlite_schema_1_migrates(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        version, statements = SQLITE_MIGRATIONS[0]
        assert version == 1
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (1, 0)")
        conn.execute(
            V1_INSERT.format(values=", ".join("?" * 12)), (*V1_ROW, CREATED.timestamp(), 0.0)
        )
    registry = await SqliteRegistry.open(str(path))
    try:
        order = await registry.get("ord-old")
        _check(order, await registry.history("ord-old"))
        assert await registry.pending_revocations() == []
    finally:
        await registry.close()
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")] == [
            1,
            2,
        ]


@pytest.mark.postgres
async def test_postgres_schema_1_migrates(pg_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE schema_migrations "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL)"
        )
        version, statements = POSTGRES_MIGRATIONS[0]
        assert version == 1
        for statement in statements:
            await conn.execute(statement)
        await conn.execute("INSERT INTO schema_migrations VALUES (1, now())")
        await conn.execute(
            V1_INSERT.format(values=", ".join(["%s"] * 12)), (*V1_ROW, CREATED, CREATED)
        )
    registry = await PostgresRegistry.open(pg_url)
    try:
        order = await registry.get("ord-old")
        _check(order, await registry.history("ord-old"))
    finally:
        await registry.close()
