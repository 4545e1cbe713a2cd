"""SQLite order registry (stdlib ``sqlite3``), the embedded default for one host.

All database work runs on one dedicated thread with its own connection, so the event
loop never blocks on disk and in-process writes are serialised. Writes use
``BEGIN IMMEDIATE`` and WAL mode, so a few processes can share the file safely.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from gateway.domain import OrderChannel, UnavailableError
from gateway.registry import ClaimedOrder, PendingStats, rows
from gateway.registry.migrations import SQLITE_MIGRATIONS
from gateway.tokens import Clock, utc_now

logger = logging.getLogger(__name__)

T = TypeVar("T")

_COLUMNS = rows.SELECT_COLUMNS
_INSERT = (
    f"INSERT INTO orders ({rows.INSERT_COLUMNS}) "
    f"VALUES ({', '.join('?' * len(rows.INSERT_COLUMNS.split(',')))})"
)


def _ts(value: datetime) -> float:
    return value.timestamp()


def _row_to_channel(row: sqlite3.Row) -> OrderChannel:
    return rows.channel_from_row(row, datetime.fromtimestamp(row[rows.CREATE_TIME], UTC))


class SqliteRegistry:
    """:class:`gateway.registry.OrderRegistry` on a SQLite file."""

    def __init__(self, path: str, *, clock: Clock = utc_now, busy_timeout_s: float = 5.0) -> None:
        self._path = path
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-registry")
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: str, *, clock: Clock = utc_now) -> SqliteRegistry:
        """Open (creating if needed) the database file and apply pending migrations."""
        registry = cls(path, clock=clock)
        await registry._run(registry._connect)
        return registry

    # -- thread plumbing -------------------------------------------------------------------

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except sqlite3.OperationalError as exc:
            # Locked past busy_timeout, disk full, file gone: transient for the caller.
            logger.warning("sqlite registry unavailable: %s", exc)
            raise UnavailableError("order registry is unavailable, retry later") from exc

    def _connect(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.row_factory = sqlite3.Row
        # Several processes (serve --workers N) may open a fresh file at once. Switching it to
        # WAL can report "database is locked" at once, without waiting on the busy timeout,
        # while another process holds the lock for the same switch: retry within the timeout.
        self._retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._conn = conn
        self._retry_locked(lambda: self._migrate(conn))

    def _retry_locked(self, step: Callable[[], object]) -> None:
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, statements in SQLITE_MIGRATIONS:
                if version in applied:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, _ts(self._clock())),
                )
                logger.info("sqlite registry: applied migration %d", version)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise UnavailableError("order registry is closed")
        return self._conn

    # -- OrderRegistry ---------------------------------------------------------------------

    async def ensure(
        self, channel: OrderChannel, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        def existing(row: sqlite3.Row) -> tuple[OrderChannel, bool]:
            return _row_to_channel(row), False

        def work() -> tuple[OrderChannel, bool]:
            db = self._db
            select = f"SELECT {_COLUMNS} FROM orders WHERE order_id = ?"
            # Repeats are the common case: answer them without taking the write lock.
            row = db.execute(select, (channel.order_id,)).fetchone()
            if row is not None:
                return existing(row)
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(select, (channel.order_id,)).fetchone()
                if row is not None:
                    db.execute("COMMIT")
                    return existing(row)
                now = self._clock()
                db.execute(_INSERT, rows.insert_values(channel, now, now + claim_for, _ts))
                db.execute("COMMIT")
                return channel, True
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        return await self._run(work)

    async def get(self, order_id: str) -> OrderChannel | None:
        def work() -> OrderChannel | None:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE order_id = ?", (order_id,)
            ).fetchone()
            return None if row is None else _row_to_channel(row)

        return await self._run(work)

    async def mark_synced(self, order_id: str) -> OrderChannel:
        def work() -> OrderChannel:
            row = self._db.execute(
                "UPDATE orders SET sync_state = 'synced', claimed_until = 0, last_error = NULL, "
                f"synced_at = ? WHERE order_id = ? RETURNING {_COLUMNS}",
                (_ts(self._clock()), order_id),
            ).fetchone()
            if row is None:
                raise LookupError(order_id)
            return _row_to_channel(row)

        return await self._run(work)

    async def record_failure(self, order_id: str, *, retry_at: datetime, error: str) -> None:
        def work() -> None:
            self._db.execute(
                "UPDATE orders SET failed_attempts = failed_attempts + 1, next_attempt_at = ?, "
                "claimed_until = 0, last_error = ? WHERE order_id = ? AND sync_state = 'pending'",
                (_ts(retry_at), error[:500], order_id),
            )

        await self._run(work)

    async def claim_pending(self, *, limit: int, lease: timedelta) -> list[ClaimedOrder]:
        def work() -> list[ClaimedOrder]:
            db = self._db
            now = self._clock()
            db.execute("BEGIN IMMEDIATE")
            try:
                claimed = db.execute(
                    f"UPDATE orders SET claimed_until = ? WHERE order_id IN ("
                    "  SELECT order_id FROM orders WHERE sync_state = 'pending'"
                    "  AND next_attempt_at <= ? AND claimed_until <= ?"
                    "  ORDER BY next_attempt_at LIMIT ?"
                    f") RETURNING {_COLUMNS}",
                    (_ts(now + lease), _ts(now), _ts(now), limit),
                ).fetchall()
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return [ClaimedOrder(_row_to_channel(r), r[rows.FAILED_ATTEMPTS]) for r in claimed]

        return await self._run(work)

    async def pending_stats(self) -> PendingStats:
        def work() -> PendingStats:
            count, oldest = self._db.execute(
                "SELECT COUNT(*), MIN(create_time) FROM orders WHERE sync_state = 'pending'"
            ).fetchone()
            return PendingStats(
                count=count,
                oldest_create_time=None if oldest is None else datetime.fromtimestamp(oldest, UTC),
            )

        return await self._run(work)

    async def close(self) -> None:
        def work() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, work)
        finally:
            self._executor.shutdown(wait=True)
