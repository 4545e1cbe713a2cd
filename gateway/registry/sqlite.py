"""SQLite order registry (stdlib ``sqlite3``), the embedded default for one host.

The event loop never waits for a lock, a long read or an fsync. Writes queued while the
previous batch was committing go together in one ``BEGIN IMMEDIATE`` transaction (group
commit; savepoints only when one of them fails): its statements run on the event loop,
which changes a few pages in memory in microseconds, and only its ``COMMIT`` (the fsync)
runs on a dedicated writer thread. Handing every statement to that thread instead made each
batch wait for the busy loop to release the GIL after every one of them (writes took 8-13 ms
at 64 new orders in flight; 5-12 ms staged). Reads go to a reader thread (the reads queued
while it was busy go over in one hand-over, and their results come back in one wake-up of
the loop); only a point read by key (:meth:`get`) runs on the loop itself, on a connection
that never waits. The loop's connections never wait for a lock either: while another
process holds the write lock, a batch tries again after a growing pause. In WAL mode
readers never wait for a writer, so a read is not queued behind a write that waits for a
lock held by another process. A few processes can share the file (``serve --workers N``).

Every call is bounded by ``timeout_s`` (``CHAT_GATEWAY_DATABASE_TIMEOUT``) in total: the
time queued, the time waiting for SQLite's lock and the work itself. Past it the call fails
with :class:`UnavailableError`; work whose caller has given up before it started is
skipped. A write that times out while it runs may still commit: every write is idempotent,
so the caller's retry is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from gateway.domain import (
    OrderChannel,
    OrderEvent,
    OrderNotFoundError,
    Revocation,
    UnavailableError,
)
from gateway.registry import (
    ClaimedOrder,
    ClaimedRevocation,
    PendingStats,
    Transition,
    rows,
)
from gateway.registry.migrations import SQLITE_MIGRATIONS
from gateway.tokens import Clock, utc_now

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_LOCK_PAUSE_S = 0.001
_LAST_LOCK_PAUSE_S = 0.05
"""Pauses between tries for the write lock while another process holds it (doubling)."""

DAMAGE_MEMORY_S = 60.0
"""How long readiness fails after a call found the database file damaged."""

_COLUMNS = rows.SELECT_COLUMNS
_SELECT_ORDER = f"SELECT {_COLUMNS} FROM orders WHERE order_id = ?"
_INSERT = (
    f"INSERT INTO orders ({rows.INSERT_COLUMNS}) "
    f"VALUES ({', '.join('?' * len(rows.INSERT_COLUMNS.split(',')))}) ON CONFLICT DO NOTHING"
)
_INSERT_EVENT = (
    f"INSERT INTO order_events (order_id, {rows.EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
)
_UPDATE = f"UPDATE orders SET {rows.UPDATE_SET.format(p='?')} WHERE order_id = ?"


def _ts(value: datetime) -> float:
    return value.timestamp()


def _moment(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _channel(row: Sequence[Any]) -> OrderChannel:
    return rows.channel_from_row(row, _moment)


class SqliteRegistry:
    """:class:`gateway.registry.OrderRegistry` on a SQLite file."""

    def __init__(self, path: str, *, clock: Clock = utc_now, timeout_s: float = 2.0) -> None:
        self._path = path
        self._clock = clock
        self._timeout_s = timeout_s
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        # An in-memory database exists once per connection: it is read where it is written.
        self._reader = (
            self._writer
            if path == ":memory:"
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        )
        self._write_conn: sqlite3.Connection | None = None
        self._damaged_at: float | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._point_conn: sqlite3.Connection | None = None
        # In-memory, the reader thread shares the write connection: the writes stay there too.
        self._writes = (
            _Queue(self._writer, self._commit)
            if path == ":memory:"
            else _Queue(self._writer, self._commit_staged, staged=True)
        )
        self._reads = _Queue(self._reader, self._read_all)

    @classmethod
    async def open(
        cls, path: str, *, clock: Clock = utc_now, timeout_s: float = 2.0
    ) -> SqliteRegistry:
        """Open (creating if needed) the database file and apply pending migrations."""
        registry = cls(path, clock=clock, timeout_s=timeout_s)
        try:
            # Opening may wait for other processes migrating the same file: allow longer.
            await registry._call(registry._writer, registry._open_writer, max(timeout_s, 10.0))
            await registry._call(registry._reader, registry._open_reader, max(timeout_s, 10.0))
        except BaseException:
            await registry.close()
            raise
        return registry

    # -- thread plumbing -------------------------------------------------------------------

    async def _call(
        self, executor: ThreadPoolExecutor, fn: Callable[[], T], timeout_s: float | None = None
    ) -> T:
        """Run ``fn`` on ``executor``'s thread, within the call's time bound."""
        bound = self._timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + bound

        def bounded() -> T:
            if time.monotonic() >= deadline:
                raise TimeoutError("gave up while queued")
            return fn()

        loop = asyncio.get_running_loop()
        with self._failures_mapped():
            async with asyncio.timeout(bound):
                return await loop.run_in_executor(executor, bounded)

    @contextlib.contextmanager
    def _failures_mapped(self) -> Iterator[None]:
        """SQLite's failures as the port's :class:`UnavailableError`."""
        try:
            yield
        except (sqlite3.OperationalError, TimeoutError) as exc:
            # Locked past the bound, disk full, file gone: transient for the caller.
            logger.warning("sqlite registry unavailable: %s: %s", type(exc).__name__, exc)
            raise UnavailableError("order registry is unavailable, retry later") from exc
        except sqlite3.DatabaseError as exc:
            # A damaged file ("database disk image is malformed"): the store cannot serve
            # this; readiness reports it (see :meth:`check`).
            self._damaged_at = time.monotonic()
            logger.error("sqlite registry damaged: %s: %s", type(exc).__name__, exc)
            raise UnavailableError("order registry cannot be read") from exc

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a write transaction shared with the writes queued with it (group
        commit: one ``COMMIT``, one fsync, for every write that waited while the previous
        batch committed); a failing one changes nothing and does not touch the others (see
        :meth:`_stage`). Bounded like every call."""
        return await self._queue(self._writes, work)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the reader thread together with the reads queued with it: one
        hand-over to the thread and back for all of them (under load, the hand-over costs
        more than a point query). Bounded like every call."""
        return await self._queue(self._reads, work)

    async def _queue(self, queue: _Queue, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        queue.pending.append(_Job(work, done, time.monotonic() + self._timeout_s))
        if queue.running is None or queue.running.done():
            queue.running = asyncio.ensure_future(self._drain(queue))
        try:
            with self._failures_mapped():
                async with asyncio.timeout(self._timeout_s):
                    # ``done`` is this caller's alone: a caller that gives up cancels it,
                    # and the batch skips or ignores a cancelled job (see _settle).
                    result: T = await done
                    return result
        finally:
            done.cancel()  # the caller gave up (or has its answer): nobody reads it later

    async def _drain(self, queue: _Queue) -> None:
        """Hand what is queued to the queue's thread, batch after batch, until none is."""
        loop = asyncio.get_running_loop()
        while queue.pending:
            batch, queue.pending = queue.pending, []
            if queue.staged:
                await self._write_staged(queue, batch)
                continue
            try:
                await loop.run_in_executor(queue.executor, queue.run, batch)
            except BaseException as exc:  # the executor is gone (closing)
                for job in batch:
                    if not job.done.done():
                        job.done.set_exception(exc)
                raise

    async def _write_staged(self, queue: _Queue, batch: list[_Job]) -> None:
        """One batch of writes: its statements here on the loop, in one transaction; its
        ``COMMIT`` on the writer thread (``queue.run``); its outcomes handed out here. Each
        step rolls back what it leaves open when it fails."""
        loop = asyncio.get_running_loop()
        try:
            outcomes = await self._stage(batch)
            await loop.run_in_executor(queue.executor, queue.run, batch)
        except BaseException as exc:
            _settle([(job, False, exc) for job in batch])
            if not isinstance(exc, Exception):
                raise  # cancelled (the loop is closing): the batch's callers have their error
            return
        _settle(outcomes)

    async def _stage(self, batch: list[_Job]) -> list[tuple[_Job, bool, Any]]:
        """On the loop: every write of ``batch`` in one open transaction, for
        :meth:`_commit_staged` to commit.

        Writes rarely fail, so the batch first runs as is; only if one raises is the
        transaction rolled back and the batch run again with a savepoint around each write,
        so the failing one changes nothing and the others still commit."""
        for isolated in (False, True):
            db = await self._begin(batch)
            try:
                return _run_writes(db, batch, isolated=isolated)
            except _WriteFailed:
                db.execute("ROLLBACK")  # and run the batch again, each write on its own
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        raise AssertionError("an isolated run never raises _WriteFailed")

    async def _begin(self, batch: list[_Job]) -> sqlite3.Connection:
        """``BEGIN IMMEDIATE`` on the write connection, from the loop. The connection does
        not wait for a lock (busy timeout 0): while another process holds the write lock,
        try again after a growing pause, until the batch's last caller gives up."""
        give_up = max(job.deadline for job in batch)
        pause = _FIRST_LOCK_PAUSE_S
        while True:
            db = self._conn(self._write_conn)
            try:
                db.execute("BEGIN IMMEDIATE")
                return db
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() + pause >= give_up:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LAST_LOCK_PAUSE_S)

    def _commit_staged(self, batch: list[_Job]) -> None:
        """The writer thread: ``COMMIT`` the transaction :meth:`_stage` ran ``batch`` in
        (the fsync); rolled back if it fails."""
        db = self._conn(self._write_conn)
        try:
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _commit(self, batch: list[_Job]) -> None:
        """The writer thread, for an in-memory database: every write of ``batch`` in one
        transaction, as :meth:`_stage` runs them."""
        try:
            db = self._conn(self._write_conn)
            try:
                outcomes = _transaction(db, lambda db: _run_writes(db, batch, isolated=False))
            except _WriteFailed:
                outcomes = _transaction(db, lambda db: _run_writes(db, batch, isolated=True))
        except BaseException as exc:
            outcomes = [(write, False, exc) for write in batch]
        _settle_all(outcomes)

    def _read_all(self, batch: list[_Job]) -> None:
        """The reader thread: every read of ``batch``, each on its own (autocommit)."""
        outcomes: list[tuple[_Job, bool, Any]] = []
        for read in batch:
            if time.monotonic() >= read.deadline:
                outcomes.append((read, False, TimeoutError("gave up while queued")))
                continue
            try:
                outcomes.append((read, True, read.work(self._conn(self._read_conn))))
            except BaseException as exc:
                outcomes.append((read, False, exc))
        _settle_all(outcomes)

    @staticmethod
    def _conn(conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise UnavailableError("order registry is closed")
        return conn

    def _connect(self, *, busy_timeout_s: float | None = None) -> sqlite3.Connection:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(
            self._path,
            # SQLite's busy_timeout: how long to wait for another connection's lock.
            timeout=self._timeout_s if busy_timeout_s is None else busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )

    def _open_writer(self) -> None:
        conn = self._connect()
        # Several processes (serve --workers N) may open a fresh file at once. Switching it to
        # WAL can report "database is locked" at once, without waiting on the busy timeout,
        # while another process holds the lock for the same switch: retry within the bound.
        self._retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._write_conn = conn
        self._retry_locked(lambda: self._migrate(conn))
        if self._writes.staged:
            # Its transactions begin on the event loop: never wait there (see _begin).
            conn.execute("PRAGMA busy_timeout=0")

    def _open_reader(self) -> None:
        if self._path == ":memory:":
            self._read_conn = self._write_conn
            return
        conn = self._connect()
        conn.execute("PRAGMA query_only=ON")
        self._read_conn = conn
        # The event loop's own connection, for point reads by key (see :meth:`get`): it
        # never waits for a lock, it fails at once and the reader thread takes over.
        point = self._connect(busy_timeout_s=0)
        point.execute("PRAGMA query_only=ON")
        self._point_conn = point

    def _retry_locked(self, step: Callable[[], object]) -> None:
        deadline = time.monotonic() + max(self._timeout_s, 10.0)
        while True:
            try:
                step()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            applied = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
            for version, statements in SQLITE_MIGRATIONS:
                if version in applied:
                    continue
                for statement in statements:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, _ts(self._clock())),
                )
                logger.info("sqlite registry: applied migration %d", version)

        _transaction(conn, work)

    # -- orders ----------------------------------------------------------------------------

    async def ensure(
        self, channel: OrderChannel, event: OrderEvent, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        # Repeats are the common case: answer them without the writer thread or its lock.
        known = await self.get(channel.order_id)
        if known is not None:
            return known, False

        def work(db: sqlite3.Connection) -> tuple[OrderChannel, bool]:
            now = self._clock()
            values = rows.insert_values(channel, now, now + claim_for, _ts)
            if db.execute(_INSERT, values).rowcount == 0:  # recorded meanwhile
                return _channel(db.execute(_SELECT_ORDER, (channel.order_id,)).fetchone()), False
            db.execute(_INSERT_EVENT, rows.event_values(channel.order_id, event, _ts))
            return channel, True

        return await self._write(work)

    async def get(self, order_id: str) -> OrderChannel | None:
        def work(db: sqlite3.Connection) -> OrderChannel | None:
            row = db.execute(_SELECT_ORDER, (order_id,)).fetchone()
            return None if row is None else _channel(row)

        # A read of one row by its key runs right here on the event loop: in WAL mode it
        # takes no lock a writer holds, and it touches a few pages, usually in memory, so
        # it costs less than handing it to a thread and back (AuthorizeParticipant's and
        # every repeat's read). Should SQLite be busy all the same (a checkpoint, a
        # recovery) or fail in any way, the reader thread does it, waiting and failing
        # within the call's bound like every read.
        point = self._point_conn
        if point is not None:
            try:
                return work(point)
            except sqlite3.Error:
                pass
        return await self._read(work)

    async def history(self, order_id: str) -> list[OrderEvent]:
        def work(db: sqlite3.Connection) -> list[OrderEvent]:
            found = db.execute(
                f"SELECT {rows.EVENT_COLUMNS} FROM order_events WHERE order_id = ? ORDER BY id",
                (order_id,),
            ).fetchall()
            return [rows.event_from_row(r, _moment) for r in found]

        return await self._read(work)

    async def change(
        self, order_id: str, transition: Transition, *, claim_for: timedelta
    ) -> tuple[OrderChannel, bool]:
        def work(db: sqlite3.Connection) -> tuple[OrderChannel, bool]:
            row = db.execute(_SELECT_ORDER, (order_id,)).fetchone()
            if row is None:
                raise OrderNotFoundError(order_id)
            change = transition(_channel(row))
            if change is None:
                return _channel(row), False
            changed, events = change
            now = self._clock()
            db.execute(_UPDATE, (*rows.update_values(changed, now, now + claim_for, _ts), order_id))
            for event in events:
                db.execute(_INSERT_EVENT, rows.event_values(order_id, event, _ts))
            return changed, True

        return await self._write(work)

    async def mark_synced(self, order_id: str, version: int) -> OrderChannel:
        def work(db: sqlite3.Connection) -> OrderChannel:
            row = db.execute(
                "UPDATE orders SET sync_state = 'synced', claimed_until = 0, last_error = NULL, "
                "failed_attempts = 0, synced_at = ? WHERE order_id = ? AND version = ? "
                f"RETURNING {_COLUMNS}",
                (_ts(self._clock()), order_id, version),
            ).fetchone()
            if row is None:  # changed since: another version is due; report it as stored
                row = db.execute(_SELECT_ORDER, (order_id,)).fetchone()
            if row is None:
                raise OrderNotFoundError(order_id)
            return _channel(row)

        return await self._write(work)

    async def record_failure(self, order_id: str, *, retry_at: datetime, error: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE orders SET failed_attempts = failed_attempts + 1, next_attempt_at = ?, "
                "claimed_until = 0, last_error = ? WHERE order_id = ? AND sync_state = 'pending'",
                (_ts(retry_at), error[:500], order_id),
            )

        await self._write(work)

    async def claim_pending(self, *, limit: int, lease: timedelta) -> list[ClaimedOrder]:
        def work(db: sqlite3.Connection) -> list[ClaimedOrder]:
            now = self._clock()
            claimed = db.execute(
                f"UPDATE orders SET claimed_until = ? WHERE order_id IN ("
                "  SELECT order_id FROM orders WHERE sync_state = 'pending'"
                "  AND next_attempt_at <= ? AND claimed_until <= ?"
                "  ORDER BY next_attempt_at LIMIT ?"
                f") RETURNING {_COLUMNS}",
                (_ts(now + lease), _ts(now), _ts(now), limit),
            ).fetchall()
            return [ClaimedOrder(_channel(r), r[rows.FAILED_ATTEMPTS]) for r in claimed]

        return await self._write(work)

    async def claim(self, order_id: str, *, lease: timedelta) -> ClaimedOrder | None:
        def work(db: sqlite3.Connection) -> ClaimedOrder | None:
            now = self._clock()
            row = db.execute(
                "UPDATE orders SET claimed_until = ? WHERE order_id = ? "
                "AND sync_state = 'pending' AND next_attempt_at <= ? AND claimed_until <= ? "
                f"RETURNING {_COLUMNS}",
                (_ts(now + lease), order_id, _ts(now), _ts(now)),
            ).fetchone()
            return None if row is None else ClaimedOrder(_channel(row), row[rows.FAILED_ATTEMPTS])

        return await self._write(work)

    async def resync(self, order_ids: Sequence[str]) -> int:
        def work(db: sqlite3.Connection) -> int:
            now = _ts(self._clock())
            found = 0
            for order_id in order_ids:
                found += db.execute(
                    "UPDATE orders SET sync_state = 'pending', next_attempt_at = ?, "
                    "version = version + 1 WHERE order_id = ?",
                    (now, order_id),
                ).rowcount
            return found

        return await self._write(work)

    async def orders(self, *, after: str, limit: int) -> list[OrderChannel]:
        def work(db: sqlite3.Connection) -> list[OrderChannel]:
            found = db.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE order_id > ? ORDER BY order_id LIMIT ?",
                (after, limit),
            ).fetchall()
            return [_channel(r) for r in found]

        return await self._read(work)

    # -- revocations -----------------------------------------------------------------------

    async def revoke(
        self, user_id: str, revoke_time: datetime, *, claim_for: timedelta
    ) -> Revocation:
        def work(db: sqlite3.Connection) -> Revocation:
            now = self._clock()
            row = db.execute(
                "INSERT INTO revocations (user_id, revoke_time, sync_state, update_time, "
                "next_attempt_at, claimed_until) VALUES (?, ?, 'pending', ?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET "
                "revoke_time = max(revoke_time, excluded.revoke_time), sync_state = 'pending', "
                "update_time = excluded.update_time, next_attempt_at = excluded.next_attempt_at, "
                "claimed_until = excluded.claimed_until, failed_attempts = 0, last_error = NULL "
                f"RETURNING {rows.REVOCATION_COLUMNS}",
                (user_id, _ts(revoke_time), _ts(now), _ts(now), _ts(now + claim_for)),
            ).fetchone()
            return rows.revocation_from_row(row, _moment)

        return await self._write(work)

    async def mark_revocation_synced(self, user_id: str, revoke_time: datetime) -> Revocation:
        def work(db: sqlite3.Connection) -> Revocation:
            db.execute(
                "UPDATE revocations SET sync_state = 'synced', synced_at = ?, claimed_until = 0, "
                "last_error = NULL, failed_attempts = 0 WHERE user_id = ? AND revoke_time <= ?",
                (_ts(self._clock()), user_id, _ts(revoke_time)),
            )
            row = db.execute(
                f"SELECT {rows.REVOCATION_COLUMNS} FROM revocations WHERE user_id = ?", (user_id,)
            ).fetchone()
            return rows.revocation_from_row(row, _moment)

        return await self._write(work)

    async def record_revocation_failure(
        self, user_id: str, *, retry_at: datetime, error: str
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE revocations SET failed_attempts = failed_attempts + 1, "
                "next_attempt_at = ?, claimed_until = 0, last_error = ? "
                "WHERE user_id = ? AND sync_state = 'pending'",
                (_ts(retry_at), error[:500], user_id),
            )

        await self._write(work)

    async def claim_pending_revocations(
        self, *, limit: int, lease: timedelta
    ) -> list[ClaimedRevocation]:
        def work(db: sqlite3.Connection) -> list[ClaimedRevocation]:
            now = self._clock()
            claimed = db.execute(
                "UPDATE revocations SET claimed_until = ? WHERE user_id IN ("
                "  SELECT user_id FROM revocations WHERE sync_state = 'pending'"
                "  AND next_attempt_at <= ? AND claimed_until <= ?"
                "  ORDER BY next_attempt_at LIMIT ?"
                f") RETURNING {rows.REVOCATION_COLUMNS}",
                (_ts(now + lease), _ts(now), _ts(now), limit),
            ).fetchall()
            return [ClaimedRevocation(rows.revocation_from_row(r, _moment), r[3]) for r in claimed]

        return await self._write(work)

    async def pending_revocations(self) -> list[Revocation]:
        def work(db: sqlite3.Connection) -> list[Revocation]:
            found = db.execute(
                f"SELECT {rows.REVOCATION_COLUMNS} FROM revocations "
                "WHERE sync_state = 'pending' ORDER BY user_id"
            ).fetchall()
            return [rows.revocation_from_row(r, _moment) for r in found]

        return await self._read(work)

    async def pending_stats(self) -> PendingStats:
        def work(db: sqlite3.Connection) -> PendingStats:
            count, oldest = db.execute(
                "SELECT COUNT(*), MIN(update_time) FROM ("
                "  SELECT update_time FROM orders WHERE sync_state = 'pending'"
                "  UNION ALL"
                "  SELECT update_time FROM revocations WHERE sync_state = 'pending')"
            ).fetchone()
            return PendingStats(
                count=count, oldest_change_time=None if oldest is None else _moment(oldest)
            )

        return await self._read(work)

    async def check(self) -> None:
        """Fails for :data:`DAMAGE_MEMORY_S` after any call found the file damaged (a
        damaged page is only found by a query that reads it), else reads the backlog."""
        if self._damaged_at is not None and time.monotonic() - self._damaged_at < DAMAGE_MEMORY_S:
            raise UnavailableError("order registry reported a damaged database file")
        await self.pending_stats()

    async def close(self) -> None:
        def closer(attr: str) -> Callable[[], None]:
            def work() -> None:
                conn = getattr(self, attr)
                if conn is not None:
                    conn.close()
                    setattr(self, attr, None)

            return work

        loop = asyncio.get_running_loop()
        point, self._point_conn = self._point_conn, None
        if point is not None:
            point.close()
        try:
            await loop.run_in_executor(self._reader, closer("_read_conn"))
            await loop.run_in_executor(self._writer, closer("_write_conn"))
        finally:
            self._writer.shutdown(wait=True)
            self._reader.shutdown(wait=True)


@dataclass(slots=True)
class _Job:
    """One queued read or write: its work, its caller's future, and when its caller gives
    up."""

    work: Callable[[sqlite3.Connection], Any]
    done: asyncio.Future[Any]
    deadline: float


@dataclass(slots=True)
class _Queue:
    """Jobs for one thread: ``run`` takes a batch of them on ``executor``'s thread
    (``staged``: a batch of writes the loop has run, to commit)."""

    executor: ThreadPoolExecutor
    run: Callable[[list[_Job]], None]
    staged: bool = False
    pending: list[_Job] = field(default_factory=list)
    running: asyncio.Future[None] | None = None


def _settle_all(outcomes: list[tuple[_Job, bool, Any]]) -> None:
    """From a database thread: hand every outcome to its caller, in one wake-up of the
    event loop."""
    if outcomes:
        outcomes[0][0].done.get_loop().call_soon_threadsafe(_settle, outcomes)


def _settle(outcomes: list[tuple[_Job, bool, Any]]) -> None:
    for job, ok, value in outcomes:
        if job.done.done():
            continue
        if ok:
            job.done.set_result(value)
        else:
            job.done.set_exception(value)


class _WriteFailed(Exception):
    """A write of a batch run without savepoints raised: run the batch again, isolated."""


def _run_writes(
    db: sqlite3.Connection, batch: list[_Job], *, isolated: bool
) -> list[tuple[_Job, bool, Any]]:
    """Every write of ``batch``, in the caller's transaction; ``isolated``, each in a
    savepoint of its own, so a failing one leaves no trace.

    Raises:
        _WriteFailed: a write raised and ``isolated`` is false (roll the transaction back).
    """
    outcomes: list[tuple[_Job, bool, Any]] = []
    for write in batch:
        if time.monotonic() >= write.deadline:
            outcomes.append((write, False, TimeoutError("gave up while queued")))
            continue
        if not isolated:
            try:
                outcomes.append((write, True, write.work(db)))
            except BaseException as exc:
                raise _WriteFailed from exc
            continue
        db.execute("SAVEPOINT write")
        try:
            value = write.work(db)
        except BaseException as exc:
            db.execute("ROLLBACK TO write")
            outcomes.append((write, False, exc))
        else:
            outcomes.append((write, True, value))
        db.execute("RELEASE write")
    return outcomes


def _transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` in one ``BEGIN IMMEDIATE`` transaction: committed, or rolled back."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result
