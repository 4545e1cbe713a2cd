"""Versioned schema migrations, applied in order at startup. Never edit a released one:
append a new version instead."""

from __future__ import annotations

Migration = tuple[int, tuple[str, ...]]

SQLITE_MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        (
            """
            CREATE TABLE orders (
                order_id        TEXT PRIMARY KEY,
                channel_type    TEXT NOT NULL,
                channel_id      TEXT NOT NULL,
                buyer_user_id   TEXT NOT NULL,
                buyer_name      TEXT NOT NULL DEFAULT '',
                buyer_image     TEXT NOT NULL DEFAULT '',
                seller_user_id  TEXT NOT NULL,
                seller_name     TEXT NOT NULL DEFAULT '',
                seller_image    TEXT NOT NULL DEFAULT '',
                sync_state      TEXT NOT NULL CHECK (sync_state IN ('pending', 'synced')),
                create_time     REAL NOT NULL,
                synced_at       REAL,
                failed_attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at REAL NOT NULL,
                claimed_until   REAL NOT NULL DEFAULT 0,
                last_error      TEXT,
                UNIQUE (channel_type, channel_id)
            )
            """,
            "CREATE INDEX orders_pending ON orders (next_attempt_at) WHERE sync_state = 'pending'",
        ),
    ),
)

# PostgreSQL: the same columns as SQLite, with native types. Times are ``timestamptz``;
# ``claimed_until`` defaults to the epoch, meaning "not claimed".
POSTGRES_MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        (
            """
            CREATE TABLE orders (
                order_id        text PRIMARY KEY,
                channel_type    text NOT NULL,
                channel_id      text NOT NULL,
                buyer_user_id   text NOT NULL,
                buyer_name      text NOT NULL DEFAULT '',
                buyer_image     text NOT NULL DEFAULT '',
                seller_user_id  text NOT NULL,
                seller_name     text NOT NULL DEFAULT '',
                seller_image    text NOT NULL DEFAULT '',
                sync_state      text NOT NULL CHECK (sync_state IN ('pending', 'synced')),
                create_time     timestamptz NOT NULL,
                synced_at       timestamptz,
                failed_attempts integer NOT NULL DEFAULT 0,
                next_attempt_at timestamptz NOT NULL,
                claimed_until   timestamptz NOT NULL DEFAULT 'epoch',
                last_error      text,
                UNIQUE (channel_type, channel_id)
            )
            """,
            "CREATE INDEX orders_pending ON orders (next_attempt_at) WHERE sync_state = 'pending'",
        ),
    ),
)
