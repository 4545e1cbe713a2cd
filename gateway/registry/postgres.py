"""PostgreSQL order registry (psycopg 3, async, with a connection pool), for N replicas.

Every replica talks to the same database. The row is the outbox: the sync worker of any
replica claims due pending orders with ``SELECT … FOR UPDATE SKIP LOCKED`` and stamps a
lease (``claimed_until``) on them in the same statement, so two replicas never work on
the same order at once, and a crashed replica's orders become claimable again when its
lease runs out.

Failure behaviour: each call is bounded by ``timeout_s`` in total (waiting for a pooled
connection included). When the database cannot be reached, calls raise
:class:`gateway.domain.UnavailableError` within that bound instead of hanging, and a call
returns only after its transaction committed. Pooled connections are checked before use,
so after a database restart broken ones are replaced and calls succeed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from gateway.domain import OrderChannel, UnavailableError
from gateway.registry import ClaimedOrder, PendingStats, rows
from gateway.registry.migrations import POSTGRES_MIGRATIONS
from gateway.tokens import Clock, utc_now

__all__ = ["PostgresRegistry"]

logger = logging.getLogger(__name__)

_COLUMNS = rows.SELECT_COLUMNS

# Key of the transaction-scoped advisory lock that serialises migrations across replicas
# starting at once ("ttchatmg" in ASCII; any fixed bigint works).
_MIGRATION_LOCK_KEY = 0x7474_6368_6174_6D67

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# What "the database cannot be reached right now" looks like from psycopg and its pool:
# connection refused or lost, server shutting down, no pooled connection in time.
_UNAVAILABLE = (psycopg.OperationalError, PoolTimeout, PoolClosed, TimeoutError)


def _row_to_channel(row: Sequence[Any]) -> OrderChannel:
    return rows.channel_from_row(row, row[rows.CREATE_TIME].astimezone(UTC))


class PostgresRegistry:
    """:class:`gateway.registry.OrderRegistry` on PostgreSQL, shared by all replicas."""

    def __init__(
        self,
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        *,
        clock: Clock = utc_now,
        timeout_s: float = 2.0,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._timeout_s = timeout_s

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        clock: Clock = utc_now,
        pool_size: int = 10,
        timeout_s: float = 2.0,
        startup_timeout_s: float = 30.0,
    ) -> PostgresRegistry:
        """Connect to ``url`` (``postgresql://…``) and apply pending migrations.

        Args:
            url: libpq connection URI.
            clock: source of "now" for due times and leases.
            pool_size: most connections this process opens.
            timeout_s: upper bound of one registry call, pool wait included.
            startup_timeout_s: how long to wait for the first connection and migrations.

        Raises:
            UnavailableError: the database cannot be reached within ``startup_timeout_s``.
        """
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            name="chat-registry",
            timeout=timeout_s,
            # A connection broken by a database restart is detected and replaced here,
            # before a call uses it.
            check=AsyncConnectionPool.check_connection,
            # Give up a failing background reconnect early: the next call then starts a
            # fresh attempt at once, instead of waiting out an ever longer backoff.
            reconnect_timeout=max(2.0 * timeout_s, 5.0),
            kwargs={
                "autocommit": True,
                "connect_timeout": max(2, round(timeout_s)),
                "application_name": "tradetrust-chat-gateway",
                # Notice a silently dead peer (no RST) within seconds, not hours.
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
            },
        )
        try:
            await pool.open(wait=True, timeout=startup_timeout_s)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            await pool.close()
            raise UnavailableError(
                f"order registry: cannot connect to PostgreSQL within {startup_timeout_s:.0f}s"
            ) from exc
        registry = cls(pool, clock=clock, timeout_s=timeout_s)
        try:
            await registry._migrate(startup_timeout_s)
        except BaseException:
            await pool.close()
            raise
        return registry

    @asynccontextmanager
    async def _connection(
        self, timeout_s: float | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection for one call, bounded in time; foreign errors mapped."""
        try:
            async with (
                asyncio.timeout(timeout_s or self._timeout_s),
                self._pool.connection() as conn,
            ):
                yield conn
        except _UNAVAILABLE as exc:
            logger.warning("postgres registry unavailable: %s: %s", type(exc).__name__, exc)
            raise UnavailableError("order registry is unavailable, retry later") from exc

    async def _migrate(self, timeout_s: float) -> None:
        async with self._connection(timeout_s) as conn, conn.transaction():
            # Held until commit: a second replica starting now waits here, then finds
            # every migration applied.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL)"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            applied = {row[0] for row in await cur.fetchall()}
            for version, statements in POSTGRES_MIGRATIONS:
                if version in applied:
                    continue
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (version, self._clock()),
                )
                logger.info("postgres registry: applied migration %d", version)
            known = max(version for version, _ in POSTGRES_MIGRATIONS)
            if applied and max(applied) > known:
                logger.warning(
                    "postgres registry: schema version %d is newer than this gateway's %d",
                    max(applied),
                    known,
                )

    # -- OrderRegistry ---------------------------------------------------------------------

    async def ensure(
        self, channel: OrderChannel, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        now = self._clock()
        async with self._connection() as conn, conn.transaction():
            # Concurrent inserts of one order wait on each other here; the losers do
            # nothing and then read the winner's committed row (READ COMMITTED takes a
            # fresh snapshot per statement, so the SELECT sees it).
            cur = await conn.execute(
                f"INSERT INTO orders ({rows.INSERT_COLUMNS}) "
                f"VALUES ({', '.join(['%s'] * len(rows.INSERT_COLUMNS.split(',')))}) "
                f"ON CONFLICT (order_id) DO NOTHING RETURNING {_COLUMNS}",
                rows.insert_values(channel, now, now + claim_for, lambda moment: moment),
            )
            row = await cur.fetchone()
            created = row is not None
            if row is None:
                cur = await conn.execute(
                    f"SELECT {_COLUMNS} FROM orders WHERE order_id = %s", (channel.order_id,)
                )
                row = await cur.fetchone()
                if row is None:  # pragma: no cover - rows are never deleted
                    raise UnavailableError("order registry changed under us, retry")
        return _row_to_channel(row), created

    async def get(self, order_id: str) -> OrderChannel | None:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE order_id = %s", (order_id,)
            )
            row = await cur.fetchone()
        return None if row is None else _row_to_channel(row)

    async def mark_synced(self, order_id: str) -> OrderChannel:
        async with self._connection() as conn:
            cur = await conn.execute(
                "UPDATE orders SET sync_state = 'synced', claimed_until = %s, last_error = NULL, "
                f"synced_at = %s WHERE order_id = %s RETURNING {_COLUMNS}",
                (_EPOCH, self._clock(), order_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise LookupError(order_id)
        return _row_to_channel(row)

    async def record_failure(self, order_id: str, *, retry_at: datetime, error: str) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE orders SET failed_attempts = failed_attempts + 1, next_attempt_at = %s, "
                "claimed_until = %s, last_error = %s "
                "WHERE order_id = %s AND sync_state = 'pending'",
                (retry_at, _EPOCH, error[:500], order_id),
            )

    async def claim_pending(self, *, limit: int, lease: timedelta) -> list[ClaimedOrder]:
        now = self._clock()
        async with self._connection() as conn:
            # One statement, one transaction: rows another replica is claiming right now
            # are skipped (not waited for); a row whose claim it has just committed fails
            # the re-checked ``claimed_until <= now`` and is skipped too.
            cur = await conn.execute(
                "WITH due AS ("
                "  SELECT order_id FROM orders"
                "  WHERE sync_state = 'pending' AND next_attempt_at <= %(now)s"
                "  AND claimed_until <= %(now)s"
                "  ORDER BY next_attempt_at LIMIT %(limit)s"
                "  FOR UPDATE SKIP LOCKED"
                ") "
                "UPDATE orders AS o SET claimed_until = %(until)s FROM due "
                "WHERE o.order_id = due.order_id "
                f"RETURNING {', '.join('o.' + c.strip() for c in _COLUMNS.split(','))}",
                {"now": now, "limit": limit, "until": now + lease},
            )
            claimed = await cur.fetchall()
        return [ClaimedOrder(_row_to_channel(r), r[rows.FAILED_ATTEMPTS]) for r in claimed]

    async def pending_stats(self) -> PendingStats:
        async with self._connection() as conn:
            cur = await conn.execute(
                "SELECT count(*), min(create_time) FROM orders WHERE sync_state = 'pending'"
            )
            row = await cur.fetchone()
        assert row is not None  # an aggregate always returns one row
        count, oldest = row
        return PendingStats(
            count=count, oldest_create_time=None if oldest is None else oldest.astimezone(UTC)
        )

    async def close(self) -> None:
        await self._pool.close()
