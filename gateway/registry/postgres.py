"""PostgreSQL order registry (psycopg 3, async, with a connection pool), for N replicas.

Every replica talks to the same database. The row is the outbox: the sync worker of any
replica claims due pending orders with ``SELECT … FOR UPDATE SKIP LOCKED`` and stamps a
lease (``claimed_until``) on them in the same statement, so two replicas never work on
the same order at once, and a crashed replica's orders become claimable again when its
lease runs out.

Failure behaviour: each call is bounded by ``timeout_s`` in total (waiting for a pooled
connection included). When the database cannot be reached, calls raise
:class:`gateway.domain.UnavailableError` within that bound instead of hanging, and a call
returns only after its transaction committed. Pooled connections idle for a second or
more are checked before use, so after a database restart broken ones are replaced and
calls succeed again. The hot calls (``ensure``, ``mark_synced``, ``get``) are one
statement each: one round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from gateway.domain import (
    OrderChannel,
    OrderEvent,
    OrderNotFoundError,
    Revocation,
    UnavailableError,
)
from gateway.registry import ClaimedOrder, ClaimedRevocation, PendingStats, Transition, rows
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


def _moment(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _same(value: datetime) -> datetime:
    return value


def _channel(row: Sequence[Any]) -> OrderChannel:
    return rows.channel_from_row(row, _moment)


def _placeholders(columns: str) -> str:
    return ", ".join(["%s"] * len(columns.split(",")))


_SELECT_ORDER = f"SELECT {_COLUMNS} FROM orders WHERE order_id = %s"
_INSERT_EVENT = (
    f"INSERT INTO order_events (order_id, {rows.EVENT_COLUMNS}) "
    f"VALUES (%s, {_placeholders(rows.EVENT_COLUMNS)})"
)

_ENSURE = (
    f"WITH new AS (INSERT INTO orders ({rows.INSERT_COLUMNS}) "
    f"VALUES ({_placeholders(rows.INSERT_COLUMNS)}) "
    # No conflict target: the order id and the channel id are both unique, and a racing
    # insert of the same order may meet either index first.
    f"ON CONFLICT DO NOTHING RETURNING {_COLUMNS}), "
    f"logged AS (INSERT INTO order_events (order_id, {rows.EVENT_COLUMNS}) "
    f"SELECT order_id, {_placeholders(rows.EVENT_COLUMNS)} FROM new) "
    f"SELECT {_COLUMNS}, true FROM new UNION ALL "
    f"SELECT {_COLUMNS}, false FROM orders WHERE order_id = %s AND NOT EXISTS (SELECT FROM new)"
)
"""Insert an order with its event unless it exists; the row as stored and whether it is new."""
_SELECT_KNOWN = f"SELECT {_COLUMNS}, false FROM orders WHERE order_id = %s"


RECENTLY_USED_S = 1.0
"""A pooled connection that completed a call this recently is lent without a check."""

_last_used: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
    weakref.WeakKeyDictionary()
)


async def _check(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's check before lending ``conn``: a round trip, unless ``conn`` completed a
    call within :data:`RECENTLY_USED_S` (under load, nearly every time: the check would
    double a call's round trips). A connection broken since fails that call, which the
    caller sees as unavailable and retries; the pool then drops it."""
    used = _last_used.get(conn)
    if used is None or time.monotonic() - used >= RECENTLY_USED_S:
        await AsyncConnectionPool.check_connection(conn)


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
            # before a call uses it (unless it was in use a moment ago: see _check).
            check=_check,
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
                _last_used[conn] = time.monotonic()
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

    # -- orders ----------------------------------------------------------------------------

    async def ensure(
        self, channel: OrderChannel, event: OrderEvent, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        now = self._clock()
        order_id = channel.order_id
        async with self._connection() as conn:
            # One statement, one round trip (autocommit): the order and its event are
            # inserted together or not at all; a known order is returned as stored.
            cur = await conn.execute(
                _ENSURE,
                (
                    *rows.insert_values(channel, now, now + claim_for, _same),
                    *rows.event_values(order_id, event, _same)[1:],
                    order_id,
                ),
            )
            row = await cur.fetchone()
            if row is None:
                # Inserted concurrently by another call, committed after this statement's
                # snapshot: it waited for that insert, so a fresh read sees the row.
                cur = await conn.execute(_SELECT_KNOWN, (order_id,))
                row = await cur.fetchone()
        if row is None:  # pragma: no cover - rows are never deleted
            raise UnavailableError("order registry changed under us, retry")
        return _channel(row), bool(row[-1])

    async def get(self, order_id: str) -> OrderChannel | None:
        async with self._connection() as conn:
            cur = await conn.execute(_SELECT_ORDER, (order_id,))
            row = await cur.fetchone()
        return None if row is None else _channel(row)

    async def history(self, order_id: str) -> list[OrderEvent]:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {rows.EVENT_COLUMNS} FROM order_events WHERE order_id = %s ORDER BY id",
                (order_id,),
            )
            found = await cur.fetchall()
        return [rows.event_from_row(r, _moment) for r in found]

    async def change(
        self, order_id: str, transition: Transition, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        async with self._connection() as conn, conn.transaction():
            # The row lock serialises concurrent changes of one order across replicas.
            cur = await conn.execute(_SELECT_ORDER + " FOR UPDATE", (order_id,))
            row = await cur.fetchone()
            if row is None:
                raise OrderNotFoundError(order_id)
            change = transition(_channel(row))
            if change is None:
                return _channel(row), False
            changed, events = change
            now = self._clock()
            await conn.execute(
                f"UPDATE orders SET {rows.UPDATE_SET.format(p='%s')} WHERE order_id = %s",
                (*rows.update_values(changed, now, now + claim_for, _same), order_id),
            )
            for event in events:
                await conn.execute(_INSERT_EVENT, rows.event_values(order_id, event, _same))
        return changed, True

    async def mark_synced(self, order_id: str, version: int) -> OrderChannel:
        async with self._connection() as conn:
            cur = await conn.execute(
                "UPDATE orders SET sync_state = 'synced', claimed_until = %s, last_error = NULL, "
                "failed_attempts = 0, synced_at = %s WHERE order_id = %s AND version = %s "
                f"RETURNING {_COLUMNS}",
                (_EPOCH, self._clock(), order_id, version),
            )
            row = await cur.fetchone()
            if row is None:  # changed since: another version is due; report it as stored
                cur = await conn.execute(_SELECT_ORDER, (order_id,))
                row = await cur.fetchone()
        if row is None:
            raise OrderNotFoundError(order_id)
        return _channel(row)

    async def record_failure(self, order_id: str, *, retry_at: datetime, error: str) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE orders SET failed_attempts = failed_attempts + 1, next_attempt_at = %s, "
                "claimed_until = %s, last_error = %s "
                "WHERE order_id = %s AND sync_state = 'pending'",
                (retry_at, _EPOCH, error[:500], order_id),
            )

    async def claim_pending(self, *, limit: int, lease: timedelta) -> list[ClaimedOrder]:
        claimed = await self._claim("orders", "order_id", _COLUMNS, limit, lease)
        return [ClaimedOrder(_channel(r), r[rows.FAILED_ATTEMPTS]) for r in claimed]

    async def _claim(
        self, table: str, key: str, columns: str, limit: int, lease: timedelta
    ) -> list[Sequence[Any]]:
        now = self._clock()
        async with self._connection() as conn:
            # One statement, one transaction: rows another replica is claiming right now
            # are skipped (not waited for); a row whose claim it has just committed fails
            # the re-checked ``claimed_until <= now`` and is skipped too.
            cur = await conn.execute(
                "WITH due AS ("
                f"  SELECT {key} FROM {table}"
                "  WHERE sync_state = 'pending' AND next_attempt_at <= %(now)s"
                "  AND claimed_until <= %(now)s"
                "  ORDER BY next_attempt_at LIMIT %(limit)s"
                "  FOR UPDATE SKIP LOCKED"
                ") "
                f"UPDATE {table} AS o SET claimed_until = %(until)s FROM due "
                f"WHERE o.{key} = due.{key} "
                f"RETURNING {', '.join('o.' + c.strip() for c in columns.split(','))}",
                {"now": now, "limit": limit, "until": now + lease},
            )
            return list(await cur.fetchall())

    async def claim(self, order_id: str, *, lease: timedelta) -> ClaimedOrder | None:
        now = self._clock()
        async with self._connection() as conn:
            cur = await conn.execute(
                "UPDATE orders SET claimed_until = %s WHERE order_id = %s "
                "AND sync_state = 'pending' AND next_attempt_at <= %s AND claimed_until <= %s "
                f"RETURNING {_COLUMNS}",
                (now + lease, order_id, now, now),
            )
            row = await cur.fetchone()
        return None if row is None else ClaimedOrder(_channel(row), row[rows.FAILED_ATTEMPTS])

    async def resync(self, order_ids: Sequence[str]) -> int:
        async with self._connection() as conn:
            cur = await conn.execute(
                "UPDATE orders SET sync_state = 'pending', next_attempt_at = %s, "
                "version = version + 1 WHERE order_id = ANY(%s)",
                (self._clock(), list(order_ids)),
            )
            return cur.rowcount

    async def orders(self, *, after: str, limit: int) -> list[OrderChannel]:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE order_id > %s ORDER BY order_id LIMIT %s",
                (after, limit),
            )
            found = await cur.fetchall()
        return [_channel(r) for r in found]

    # -- revocations -----------------------------------------------------------------------

    async def revoke(
        self, user_id: str, revoke_time: datetime, *, claim_for: timedelta
    ) -> Revocation:
        now = self._clock()
        async with self._connection() as conn:
            cur = await conn.execute(
                "INSERT INTO revocations (user_id, revoke_time, sync_state, update_time, "
                "next_attempt_at, claimed_until) VALUES (%s, %s, 'pending', %s, %s, %s) "
                "ON CONFLICT (user_id) DO UPDATE SET "
                "revoke_time = greatest(revocations.revoke_time, excluded.revoke_time), "
                "sync_state = 'pending', update_time = excluded.update_time, "
                "next_attempt_at = excluded.next_attempt_at, "
                "claimed_until = excluded.claimed_until, failed_attempts = 0, last_error = NULL "
                f"RETURNING {rows.REVOCATION_COLUMNS}",
                (user_id, revoke_time, now, now, now + claim_for),
            )
            row = await cur.fetchone()
        assert row is not None  # an upsert returns its row
        return rows.revocation_from_row(row, _moment)

    async def mark_revocation_synced(self, user_id: str, revoke_time: datetime) -> Revocation:
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE revocations SET sync_state = 'synced', synced_at = %s, claimed_until = %s, "
                "last_error = NULL, failed_attempts = 0 WHERE user_id = %s AND revoke_time <= %s",
                (self._clock(), _EPOCH, user_id, revoke_time),
            )
            cur = await conn.execute(
                f"SELECT {rows.REVOCATION_COLUMNS} FROM revocations WHERE user_id = %s",
                (user_id,),
            )
            row = await cur.fetchone()
        if row is None:
            raise LookupError(user_id)
        return rows.revocation_from_row(row, _moment)

    async def record_revocation_failure(
        self, user_id: str, *, retry_at: datetime, error: str
    ) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE revocations SET failed_attempts = failed_attempts + 1, "
                "next_attempt_at = %s, claimed_until = %s, last_error = %s "
                "WHERE user_id = %s AND sync_state = 'pending'",
                (retry_at, _EPOCH, error[:500], user_id),
            )

    async def claim_pending_revocations(
        self, *, limit: int, lease: timedelta
    ) -> list[ClaimedRevocation]:
        claimed = await self._claim("revocations", "user_id", rows.REVOCATION_COLUMNS, limit, lease)
        return [ClaimedRevocation(rows.revocation_from_row(r, _moment), r[3]) for r in claimed]

    async def pending_revocations(self) -> list[Revocation]:
        async with self._connection() as conn:
            cur = await conn.execute(
                f"SELECT {rows.REVOCATION_COLUMNS} FROM revocations "
                "WHERE sync_state = 'pending' ORDER BY user_id"
            )
            found = await cur.fetchall()
        return [rows.revocation_from_row(r, _moment) for r in found]

    async def pending_stats(self) -> PendingStats:
        async with self._connection() as conn:
            cur = await conn.execute(
                "SELECT count(*), min(update_time) FROM ("
                "  SELECT update_time FROM orders WHERE sync_state = 'pending'"
                "  UNION ALL"
                "  SELECT update_time FROM revocations WHERE sync_state = 'pending') AS pending"
            )
            row = await cur.fetchone()
        assert row is not None  # an aggregate always returns one row
        count, oldest = row
        return PendingStats(
            count=count, oldest_change_time=None if oldest is None else _moment(oldest)
        )

    async def check(self) -> None:
        await self.pending_stats()

    async def close(self) -> None:
        await self._pool.close()
