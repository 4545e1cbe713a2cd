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
import itertools
import logging
import statistics
import time
from collections import defaultdict

import grpc
import psycopg
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from tests.conftest import ORDER_SERVICE, SettingsFactory
from tests.pg import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

logger = logging.getLogger(__name__)

CLIENTS = 8
DB_TIMEOUT_S = 2.0  # CHAT_GATEWAY_DATABASE_TIMEOUT (the default)
DOWN_S = 4.0


def request(order_id: str) -> pb.EnsureOrderChannelRequest:
    return pb.EnsureOrderChannelRequest(
        order_id=order_id,
        buyer=pb.Participant(user_id=f"b-{order_id}"),
        seller=pb.Participant(user_id=f"s-{order_id}"),
    )


async def test_database_crash_and_restart_under_load(
    pg_private: PostgresServer, make_settings: SettingsFactory
) -> None:
    url = pg_private.create_database()
    settings = make_settings(
        env={"CHAT_GATEWAY_DATABASE_URL": url, "CHAT_GATEWAY_DATABASE_TIMEOUT": str(DB_TIMEOUT_S)}
    )
    gateway = Gateway(settings)
    await gateway.start()
    created_flags: dict[str, list[bool]] = defaultdict(list)  # acknowledged orders
    attempted: set[str] = set()
    failures: list[tuple[float, grpc.StatusCode]] = []  # (latency s, code)
    ok_times: list[float] = []
    stop = asyncio.Event()
    ids = itertools.count()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
            stub = pb_grpc.ChatGatewayStub(channel)

            async def client() -> None:
                while not stop.is_set():
                    order_id = f"ord-{next(ids)}"
                    attempted.add(order_id)
                    for _ in range(400):  # bounded retries of this one order
                        started = time.monotonic()
                        try:
                            response = await stub.EnsureOrderChannel(
                                request(order_id), metadata=ORDER_SERVICE, timeout=15
                            )
                        except grpc.aio.AioRpcError as exc:
                            failures.append((time.monotonic() - started, exc.code()))
                            await asyncio.sleep(0.05)
                            continue
                        created_flags[order_id].append(response.created)
                        ok_times.append(time.monotonic())
                        break
                    await asyncio.sleep(0.01)

            tasks = [asyncio.create_task(client()) for _ in range(CLIENTS)]
            await asyncio.sleep(1.0)
            acked_before = len(created_flags)
            pg_private.stop("immediate")
            down_at = time.monotonic()
            await asyncio.sleep(DOWN_S)
            pg_private.start()
            up_at = time.monotonic()
            for _ in range(300):  # bounded wait for the first success after the restart
                if ok_times and ok_times[-1] > up_at:
                    break
                await asyncio.sleep(0.05)
            recovery_s = min((t for t in ok_times if t > up_at), default=float("inf")) - up_at
            await asyncio.sleep(1.0)
            stop.set()
            async with asyncio.timeout(60):
                await asyncio.gather(*tasks)

            # Every acknowledged order, asked again, exists with the same participants.
            for order_id in created_flags:
                again = await stub.EnsureOrderChannel(
                    request(order_id), metadata=ORDER_SERVICE, timeout=15
                )
                assert not again.created
    finally:
        await gateway.stop(grace_s=1.0)

    with psycopg.connect(url) as conn:
        stored = [row[0] for row in conn.execute("SELECT order_id FROM orders").fetchall()]
    latencies = [latency for latency, _ in failures]
    logger.info(
        "restart test: acked=%d (before crash %d) attempted=%d failures=%d "
        "failure latency median=%.2fs max=%.2fs down=%.1fs recovery after restart=%.2fs",
        len(created_flags),
        acked_before,
        len(attempted),
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
    assert set(created_flags) <= set(stored) <= attempted
    assert len(stored) == len(set(stored))
    # No duplicate: an order is reported created at most once (a commit whose reply was
    # lost in the crash is reported created=false on the retry, never twice created=true).
    assert all(flags.count(True) <= 1 for flags in created_flags.values())
    assert all(flags[1:] == [False] * (len(flags) - 1) for flags in created_flags.values())
