"""Recorded orders in bulk (a SQLite registry seeded straight through its schema), and the
registry-scale latency check: sequential AuthorizeParticipant with 10 k … 1 M orders."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from gateway.registry.sqlite import SqliteRegistry
from tests.bench.loadgen import Result, pct

METHOD = "/tradetrust.chat.v1.ChatGateway/AuthorizeParticipant"


def buyer_of(i: int) -> str:
    """The buyer of recorded order ``ord-<i>``."""
    return f"buyer-{i}"


def seller_of(i: int) -> str:
    """The seller of recorded order ``ord-<i>`` (997 sellers, each with many orders)."""
    return f"seller-{i % 997}"


def populate_sqlite(path: Path, orders: int) -> None:
    """A registry file holding ``orders`` synced orders (schema from the real migrations)."""

    async def migrate() -> None:
        registry = await SqliteRegistry.open(str(path))
        await registry.close()

    asyncio.run(migrate())
    now = time.time()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        batch = 50_000
        for start in range(0, orders, batch):
            conn.executemany(
                "INSERT INTO orders (order_id, channel_type, channel_id, buyer_user_id, "
                "seller_user_id, sync_state, create_time, next_attempt_at, update_time) "
                "VALUES (?, 'messaging', ?, ?, ?, 'synced', ?, ?, ?)",
                (
                    (f"ord-{i}", f"order-ord-{i}", buyer_of(i), seller_of(i), now, now, now)
                    for i in range(start, min(orders, start + batch))
                ),
            )
        conn.commit()


async def _latencies(
    port: int, key: str, orders: int, count: int, warmup: int, seed: int
) -> list[int]:
    rng = random.Random(seed)
    metadata = (("authorization", f"Bearer {key}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call: Any = channel.unary_unary(METHOD)
        out: list[int] = []
        for n in range(warmup + count):
            i = rng.randrange(orders)
            request = pb.AuthorizeParticipantRequest(
                order_id=f"ord-{i}", user_id=buyer_of(i)
            ).SerializeToString()
            started = time.perf_counter_ns()
            reply = await call(request, metadata=metadata, timeout=5)
            elapsed = (time.perf_counter_ns() - started) // 1000
            if not pb.AuthorizeParticipantResponse.FromString(reply).allowed:
                raise AssertionError(f"ord-{i} not authorized")
            if n >= warmup:
                out.append(elapsed)
        return out


def authorize_latency(
    name: str,
    port: int,
    key: str,
    orders: int,
    *,
    count: int = 3000,
    warmup: int = 300,
    seed: int = 1,
) -> Result:
    """p50/p99 of sequential AuthorizeParticipant calls for uniformly random orders."""
    started = time.perf_counter()
    lat = sorted(asyncio.run(_latencies(port, key, orders, count, warmup, seed)))
    elapsed = time.perf_counter() - started
    return Result(name, (count + warmup) / elapsed, pct(lat, 50) / 1000, pct(lat, 99) / 1000, 0)
