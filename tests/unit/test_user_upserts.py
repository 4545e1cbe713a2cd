"""Users are upserted once per process, and concurrent new users share one call."""

from __future__ import annotations

import asyncio

import pytest

from gateway.chat import ChatBackendError
from gateway.chat.users import MAX_BATCH, User, UserUpserts


class Stream:
    """Records each upsert call; ``gate`` holds calls until the test releases them."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def upsert(self, users: list[User]) -> None:
        self.calls.append([u["id"] for u in users])
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail


async def test_a_known_user_with_the_same_details_is_not_upserted_again() -> None:
    stream = Stream()
    users = UserUpserts(stream.upsert)
    await users.ensure([{"id": "a", "name": "Ana"}, {"id": "b"}])
    await users.ensure([{"id": "a", "name": "Ana"}, {"id": "b"}])
    assert stream.calls == [["a", "b"]]
    await users.ensure([{"id": "a", "name": "Ana Maria"}])  # changed details: again
    assert stream.calls == [["a", "b"], ["a"]]


async def test_users_arriving_during_an_upsert_share_the_next_one() -> None:
    stream = Stream()
    stream.gate.clear()
    users = UserUpserts(stream.upsert)
    first = asyncio.create_task(users.ensure([{"id": "u0"}]))
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(users.ensure([{"id": f"u{i}"}, {"id": "sys"}])) for i in range(1, 30)
    ]
    await asyncio.sleep(0)
    stream.gate.set()
    await asyncio.gather(first, *waiting)
    assert stream.calls[0] == ["u0"]
    assert len(stream.calls) == 2 and sorted(stream.calls[1]) == sorted(
        [f"u{i}" for i in range(1, 30)] + ["sys"]
    )


async def test_batches_hold_at_most_stream_s_limit() -> None:
    stream = Stream()
    stream.gate.clear()
    users = UserUpserts(stream.upsert)
    first = asyncio.create_task(users.ensure([{"id": "x"}]))
    await asyncio.sleep(0)
    rest = asyncio.create_task(users.ensure([{"id": f"n{i}"} for i in range(250)]))
    await asyncio.sleep(0)
    stream.gate.set()
    await asyncio.gather(first, rest)
    assert [len(c) for c in stream.calls] == [1, MAX_BATCH, MAX_BATCH, 50]


async def test_a_failed_batch_fails_its_waiters_and_is_not_remembered() -> None:
    stream = Stream()
    stream.fail = ChatBackendError("stream down", transient=True)
    users = UserUpserts(stream.upsert)
    with pytest.raises(ChatBackendError):
        await users.ensure([{"id": "a"}])
    stream.fail = None
    await users.ensure([{"id": "a"}])
    assert stream.calls == [["a"], ["a"]]
