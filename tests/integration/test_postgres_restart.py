"""A gateway on PostgreSQL through a database crash and restart, under load.

Clients keep placing orders (retrying each one until it is acknowledged, as the order
service does). The database is killed mid-load (``pg_ctl stop -m immediate``, like a
crash), stays down for a few seconds, then comes back. Requirements checked:

- while it is down, calls fail with UNAVAILABLE, quickly (bounded by the registry timeout),
  never hang;
- after it is back, calls succeed again within seconds, with no gateway restart;
- every order acknowledged OK is in the database, none is created twice, and a repeat of
  any of them is answered ``created=false``.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time

import grpc
import psycopg
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from tests.helpers.builders import own_parties_request
from tests.helpers.gateways import GatewayFactory
from tests.helpers.load import OrderLoad
from tests.helpers.pg import PostgresServer
from tests.helpers.rpc import ORDER_SERVICE

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

logger = logging.getLogger(__name__)

CLIENTS = 8
DB_TIMEOUT_S = 2.0  # CHAT_GATEWAY_DATABASE_TIMEOUT (the default)
DOWN_S = 4.0


async def test_database_crash_and_restart_under_load(
    pg_private: PostgresServer, start_gateway: GatewayFactory
) -> None:
    url = pg_private.create_database()
    gateway = await start_gateway(
        {"CHAT_GATEWAY_DATABASE_URL": url, "CHAT_GATEWAY_DATABASE_TIMEOUT": str(DB_TIMEOUT_S)}
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        async with OrderLoad([stub], clients=CLIENTS, max_attempts=400) as load:
            await asyncio.sleep(1.0)
            acked_before = len(load.created_flags)
            pg_private.stop("immediate")
            down_at = time.monotonic()
            await asyncio.sleep(DOWN_S)
            pg_private.start()
            up_at = time.monotonic()
            recovery_s = await load.recovery_after(up_at)
            await asyncio.sleep(1.0)

        # Every acknowledged order, asked again, exists with the same participants.
        for order_id in load.created_flags:
            again = await stub.EnsureOrderChannel(
                own_parties_request(order_id), metadata=ORDER_SERVICE, timeout=15
            )
            assert not again.created
    await gateway.stop(grace_s=1.0)

    with psycopg.connect(url) as conn:
        stored = [row[0] for row in conn.execute("SELECT order_id FROM orders").fetchall()]
    created_flags, failures = load.created_flags, load.failures
    latencies = [latency for latency, _ in failures]
    logger.info(
        "restart test: acked=%d (before crash %d) attempted=%d failures=%d "
        "failure latency median=%.2fs max=%.2fs down=%.1fs recovery after restart=%.2fs",
        len(created_flags),
        acked_before,
        len(load.attempted),
        len(failures),
        statistics.median(latencies) if latencies else 0.0,
        max(latencies, default=0.0),
        up_at - down_at,
        recovery_s,
    )

    assert acked_before > 0 and len(created_flags) > acked_before  # load before and after
    assert failures, "the outage was not observed"
    assert {code for _, code in failures} == {grpc.StatusCode.UNAVAILABLE}
    assert max(latencies) < DB_TIMEOUT_S + 1.5  # fail fast, never hang
    assert recovery_s < 10.0
    # No lost order: everything acknowledged is stored; nothing unknown was stored.
    assert set(created_flags) <= set(stored) <= load.attempted
    assert len(stored) == len(set(stored))
    # No duplicate: an order is reported created at most once (a commit whose reply was
    # lost in the crash is reported created=false on the retry, never twice created=true).
    assert all(flags.count(True) <= 1 for flags in created_flags.values())
    assert all(flags[1:] == [False] * (len(flags) - 1) for flags in created_flags.values())
