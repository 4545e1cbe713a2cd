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

SQLITE_MIGRATIONS += (
    (
        2,
        (
            # The order chat's life: state, support agents, change time and version.
            "ALTER TABLE orders ADD COLUMN state TEXT NOT NULL DEFAULT 'open' "
            "CHECK (state IN ('open', 'closed', 'disputed'))",
            "ALTER TABLE orders ADD COLUMN agents TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE orders ADD COLUMN update_time REAL NOT NULL DEFAULT 0",
            "UPDATE orders SET update_time = create_time",
            "ALTER TABLE orders ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
            """
            CREATE TABLE order_events (
                id              INTEGER PRIMARY KEY AUTOINCREMENT,
                order_id        TEXT NOT NULL REFERENCES orders (order_id),
                time            REAL NOT NULL,
                action          TEXT NOT NULL,
                service         TEXT NOT NULL,
                reason          TEXT NOT NULL DEFAULT '',
                agent_user_id   TEXT NOT NULL DEFAULT ''
            )
            """,
            "CREATE INDEX order_events_by_order ON order_events (order_id, id)",
            # Orders recorded before the history existed: their creation, by an unknown caller.
            "INSERT INTO order_events (order_id, time, action, service) "
            "SELECT order_id, create_time, 'created', '' FROM orders ORDER BY create_time",
            """
            CREATE TABLE revocations (
                user_id         TEXT PRIMARY KEY,
                revoke_time     REAL NOT NULL,
                sync_state      TEXT NOT NULL CHECK (sync_state IN ('pending', 'synced')),
                update_time     REAL NOT NULL,
                synced_at       REAL,
                failed_attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at REAL NOT NULL,
                claimed_until   REAL NOT NULL DEFAULT 0,
                last_error      TEXT
            )
            """,
            "CREATE INDEX revocations_pending ON revocations (next_attempt_at) "
            "WHERE sync_state = 'pending'",
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

POSTGRES_MIGRATIONS += (
    (
        2,
        (
            "ALTER TABLE orders ADD COLUMN state text NOT NULL DEFAULT 'open' "
            "CHECK (state IN ('open', 'closed', 'disputed'))",
            "ALTER TABLE orders ADD COLUMN agents text NOT NULL DEFAULT '[]'",
            "ALTER TABLE orders ADD COLUMN update_time timestamptz",
            "UPDATE orders SET update_time = create_time",
            "ALTER TABLE orders ALTER COLUMN update_time SET NOT NULL",
            "ALTER TABLE orders ADD COLUMN version integer NOT NULL DEFAULT 1",
            """
            CREATE TABLE order_events (
                id              bigserial PRIMARY KEY,
                order_id        text NOT NULL REFERENCES orders (order_id),
                time            timestamptz NOT NULL,
                action          text NOT NULL,
                service         text NOT NULL,
                reason          text NOT NULL DEFAULT '',
                agent_user_id   text NOT NULL DEFAULT ''
            )
            """,
            "CREATE INDEX order_events_by_order ON order_events (order_id, id)",
            "INSERT INTO order_events (order_id, time, action, service) "
            "SELECT order_id, create_time, 'created', '' FROM orders ORDER BY create_time",
            """
            CREATE TABLE revocations (
                user_id         text PRIMARY KEY,
                revoke_time     timestamptz NOT NULL,
                sync_state      text NOT NULL CHECK (sync_state IN ('pending', 'synced')),
                update_time     timestamptz NOT NULL,
                synced_at       timestamptz,
                failed_attempts integer NOT NULL DEFAULT 0,
                next_attempt_at timestamptz NOT NULL,
                claimed_until   timestamptz NOT NULL DEFAULT 'epoch',
                last_error      text
            )
            """,
            "CREATE INDEX revocations_pending ON revocations (next_attempt_at) "
            "WHERE sync_state = 'pending'",
        ),
    ),
)
