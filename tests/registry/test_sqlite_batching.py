"""The SQLite registry's batching: writes queued while the previous batch commits share one
transaction (each in its own savepoint only when one fails), reads queued while the reader is
busy share one hand-over, and every caller still gets its own answer; a write lock held by
another connection delays writes without blocking the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.domain import InvalidArgumentError, OrderNotFoundError, UnavailableError
from gateway.registry.sqlite import SqliteRegistry
from tests.helpers.builders import creation, order_channel

NO_CLAIM = timedelta(0)


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[SqliteRegistry]:
    opened = await SqliteRegistry.open(str(tmp_path / "registry.db"), timeout_s=5.0)
    try:
        yield opened
    finally:
        await opened.close()


class Batches:
    """Counts the batches a queue hands to its thread, and can hold the thread busy."""

    def __init__(self, queue: Any) -> None:
        self.sizes: list[int] = []
        self.release = threading.Event()
        self.release.set()
        run: Callable[[list[Any]], None] = queue.run

        def counted(batch: list[Any]) -> None:
            self.sizes.append(len(batch))
            self.release.wait(10)
            run(batch)

        queue.run = counted


async def test_writes_queued_behind_a_busy_writer_share_one_transaction(
    registry: SqliteRegistry,
) -> None:
    batches = Batches(registry._writes)
    batches.release.clear()
    first = asyncio.create_task(
        registry.ensure(order_channel("o-0"), creation(), claim_for=NO_CLAIM)
    )
    await asyncio.sleep(0.05)  # the writer thread now holds the first batch
    rest = [
        asyncio.create_task(
            registry.ensure(order_channel(f"o-{i}"), creation(), claim_for=NO_CLAIM)
        )
        for i in range(1, 31)
    ]
    await asyncio.sleep(0.05)
    batches.release.set()
    results = await asyncio.gather(first, *rest)
    assert batches.sizes == [1, 30]
    assert [channel.order_id for channel, _ in results] == [f"o-{i}" for i in range(31)]
    assert all(created for _, created in results)


async def test_a_failing_write_in_a_batch_changes_nothing_and_spares_the_others(
    registry: SqliteRegistry,
) -> None:
    await registry.ensure(order_channel("keep"), creation(), claim_for=NO_CLAIM)
    batches = Batches(registry._writes)
    batches.release.clear()
    blocker = asyncio.create_task(
        registry.ensure(order_channel("o-0"), creation(), claim_for=NO_CLAIM)
    )
    await asyncio.sleep(0.05)

    def refuse(channel: Any) -> Any:
        raise InvalidArgumentError("reason", "refused by the test")

    failing = asyncio.create_task(registry.change("keep", refuse, claim_for=NO_CLAIM))
    missing = asyncio.create_task(registry.change("nope", refuse, claim_for=NO_CLAIM))
    fine = asyncio.create_task(
        registry.ensure(order_channel("o-1"), creation(), claim_for=NO_CLAIM)
    )
    await asyncio.sleep(0.05)
    batches.release.set()
    await blocker
    with pytest.raises(InvalidArgumentError):
        await failing
    with pytest.raises(OrderNotFoundError):
        await missing
    assert (await fine)[1] is True
    assert batches.sizes == [1, 3]
    assert await registry.get("o-1") is not None
    assert [e.action for e in await registry.history("keep")] == [creation().action]


async def test_reads_queued_behind_a_busy_reader_share_one_hand_over(
    registry: SqliteRegistry,
) -> None:
    for i in range(20):
        await registry.ensure(order_channel(f"o-{i}"), creation(), claim_for=NO_CLAIM)
    batches = Batches(registry._reads)
    batches.release.clear()
    first = asyncio.create_task(registry.history("o-0"))
    await asyncio.sleep(0.05)
    rest = [asyncio.create_task(registry.history(f"o-{i}")) for i in (*range(1, 20), 99)]
    await asyncio.sleep(0.05)
    batches.release.set()
    found = await asyncio.gather(first, *rest)
    assert batches.sizes == [1, 20]
    assert [len(events) for events in found] == [1] * 20 + [0]


async def test_a_read_queued_past_its_bound_fails_and_the_reader_skips_it(
    tmp_path: Path,
) -> None:
    registry = await SqliteRegistry.open(str(tmp_path / "r.db"), timeout_s=0.2)
    try:
        batches = Batches(registry._reads)
        batches.release.clear()
        held = asyncio.create_task(registry.history("o-0"))
        await asyncio.sleep(0.05)
        with pytest.raises(UnavailableError):
            await registry.history("o-1")  # queued behind the held read past 0.2 s
        batches.release.set()
        with pytest.raises(UnavailableError):
            await held  # it too outlived its bound while the thread was held
        assert await registry.history("o-2") == []  # the reader serves again
    finally:
        batches.release.set()
        await registry.close()


async def test_a_point_read_is_answered_without_the_reader_thread(
    registry: SqliteRegistry,
) -> None:
    await registry.ensure(order_channel("o-1"), creation(), claim_for=NO_CLAIM)
    batches = Batches(registry._reads)
    batches.release.clear()  # the reader thread is stuck
    held = asyncio.create_task(registry.history("o-1"))
    await asyncio.sleep(0.05)
    found = await asyncio.wait_for(registry.get("o-1"), 1)
    assert found is not None and found.order_id == "o-1"
    assert await asyncio.wait_for(registry.get("nope"), 1) is None
    assert batches.sizes == [1]  # only the held history read went to the thread
    batches.release.set()
    await held


async def test_a_point_read_that_fails_on_the_loop_goes_to_the_reader(
    registry: SqliteRegistry,
) -> None:
    await registry.ensure(order_channel("o-1"), creation(), claim_for=NO_CLAIM)
    batches = Batches(registry._reads)
    # Whatever SQLite error the loop's connection meets (busy, locked, closed), the read
    # is done again on the reader thread, which waits and maps failures within the bound.
    assert registry._point_conn is not None
    registry._point_conn.close()
    found = await registry.get("o-1")
    assert found is not None and found.order_id == "o-1"
    assert batches.sizes == [1]


async def test_a_write_lock_held_elsewhere_delays_writes_without_blocking_the_loop(
    registry: SqliteRegistry, tmp_path: Path
) -> None:
    # A batch's statements run on the event loop, whose connection never waits for a lock:
    # while another connection (another process, in production) holds the write lock, the
    # batch tries again after growing pauses and commits once the lock is free.
    other = sqlite3.connect(tmp_path / "registry.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        write = asyncio.create_task(
            registry.ensure(order_channel("o-1"), creation(), claim_for=NO_CLAIM)
        )
        ticks = 0
        for _ in range(30):  # 0.3 s of 10 ms ticks: the loop keeps turning meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        assert not write.done()
        assert ticks == 30
    finally:
        other.execute("ROLLBACK")
        other.close()
    channel, created = await asyncio.wait_for(write, 5)
    assert created and channel.order_id == "o-1"
    assert await registry.get("o-1") is not None


async def test_a_write_lock_held_past_the_bound_fails_the_write_and_changes_nothing(
    tmp_path: Path,
) -> None:
    registry = await SqliteRegistry.open(str(tmp_path / "r.db"), timeout_s=0.3)
    other = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(UnavailableError):
            await asyncio.wait_for(
                registry.ensure(order_channel("o-1"), creation(), claim_for=NO_CLAIM), 5
            )
        other.execute("ROLLBACK")
        assert await registry.get("o-1") is None
        assert (await registry.ensure(order_channel("o-2"), creation(), claim_for=NO_CLAIM))[1]
    finally:
        other.close()
        await registry.close()
