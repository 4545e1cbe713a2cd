"""Users are upserted once per process, and concurrent new users share one call."""

from __future__ import annotations

import asyncio

import pytest

from gateway.chat import ChatBackendError
from gateway.chat.users import MAX_BATCH, MAX_IN_FLIGHT, User, UserUpserts


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


async def test_orders_arriving_together_share_one_call() -> None:
    stream = Stream()
    users = UserUpserts(stream.upsert)
    await asyncio.gather(
        *(users.ensure([{"id": f"b{i}"}, {"id": f"s{i}"}, {"id": "sys"}]) for i in range(30))
    )
    assert len(stream.calls) == 1
    assert sorted(stream.calls[0]) == sorted(
        [f"b{i}" for i in range(30)] + [f"s{i}" for i in range(30)] + ["sys"]
    )


async def test_a_new_order_does_not_wait_for_another_orders_call_while_a_slot_is_free() -> None:
    stream = Stream()
    stream.gate.clear()
    users = UserUpserts(stream.upsert)
    first = asyncio.create_task(users.ensure([{"id": "u0"}]))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(users.ensure([{"id": "u1"}]))
    await asyncio.sleep(0.01)
    assert stream.calls == [["u0"], ["u1"]]  # both sent while the first is unanswered
    stream.gate.set()
    await asyncio.gather(first, second)


async def test_users_arriving_while_every_slot_is_busy_share_the_next_call() -> None:
    stream = Stream()
    stream.gate.clear()
    users = UserUpserts(stream.upsert)
    busy = []
    for i in range(MAX_IN_FLIGHT):
        busy.append(asyncio.create_task(users.ensure([{"id": f"busy{i}"}])))
        await asyncio.sleep(0.01)
    waiting = []
    for i in range(20):
        waiting.append(asyncio.create_task(users.ensure([{"id": f"w{i}"}, {"id": "sys"}])))
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert len(stream.calls) == MAX_IN_FLIGHT
    stream.gate.set()
    await asyncio.gather(*busy, *waiting)
    assert len(stream.calls) == MAX_IN_FLIGHT + 1
    assert sorted(stream.calls[-1]) == sorted([f"w{i}" for i in range(20)] + ["sys"])


async def test_batches_hold_at_most_stream_s_limit() -> None:
    stream = Stream()
    users = UserUpserts(stream.upsert)
    await users.ensure([{"id": f"n{i}"} for i in range(250)])
    assert sorted(len(c) for c in stream.calls) == [50, MAX_BATCH, MAX_BATCH]
    assert sorted(u for c in stream.calls for u in c) == sorted(f"n{i}" for i in range(250))


async def test_close_ends_every_wait() -> None:
    stream = Stream()
    stream.gate.clear()
    users = UserUpserts(stream.upsert)
    sent = []
    for i in range(MAX_IN_FLIGHT):
        sent.append(asyncio.create_task(users.ensure([{"id": f"u{i}"}])))
        await asyncio.sleep(0.01)
    queued = asyncio.create_task(users.ensure([{"id": "late"}]))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(users.close(), 5)
    results = await asyncio.wait_for(asyncio.gather(*sent, queued, return_exceptions=True), 5)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert len(stream.calls) == MAX_IN_FLIGHT and ["late"] not in stream.calls


async def test_a_failed_batch_fails_its_waiters_and_is_not_remembered() -> None:
    stream = Stream()
    stream.fail = ChatBackendError("stream down", transient=True)
    users = UserUpserts(stream.upsert)
    with pytest.raises(ChatBackendError):
        await users.ensure([{"id": "a"}])
    stream.fail = None
    await users.ensure([{"id": "a"}])
    assert stream.calls == [["a"], ["a"]]


async def test_a_user_whose_call_is_under_way_waits_for_it_and_is_not_sent_again() -> None:
    stream = Stream()
    stream.gate.clear()
    users = UserUpserts(stream.upsert)
    first = asyncio.create_task(users.ensure([{"id": "a", "name": "Ana"}]))
    await asyncio.sleep(0.01)  # a's call is sent and unanswered
    second = asyncio.create_task(users.ensure([{"id": "a", "name": "Ana"}]))
    await asyncio.sleep(0.01)
    assert not second.done()  # it waits for the call under way
    stream.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert stream.calls == [["a"]]


async def test_a_user_under_way_with_other_details_goes_again_after_it() -> None:
    stream = Stream()
    stream.gate.clear()
    users = UserUpserts(stream.upsert)
    first = asyncio.create_task(users.ensure([{"id": "a", "name": "Ana"}]))
    await asyncio.sleep(0.01)
    renamed = asyncio.create_task(users.ensure([{"id": "a", "name": "Ana Maria"}]))
    await asyncio.sleep(0.01)
    stream.gate.set()
    await asyncio.wait_for(asyncio.gather(first, renamed), 5)
    assert stream.calls == [["a"], ["a"]]
    await users.ensure([{"id": "a", "name": "Ana Maria"}])  # the later details are known
    assert len(stream.calls) == 2


async def test_a_queued_user_asked_again_with_other_details_is_sent_once_for_both() -> None:
    stream = Stream()
    stream.gate.clear()
    users = UserUpserts(stream.upsert)
    busy = []
    for i in range(MAX_IN_FLIGHT):  # every slot taken: "a" stays queued
        busy.append(asyncio.create_task(users.ensure([{"id": f"busy{i}"}])))
        await asyncio.sleep(0.01)
    first = asyncio.create_task(users.ensure([{"id": "a", "name": "Ana"}]))
    await asyncio.sleep(0.01)
    renamed = asyncio.create_task(users.ensure([{"id": "a", "name": "Ana Maria"}]))
    await asyncio.sleep(0.01)
    stream.gate.set()
    # Both waiters return (the first one's wait used to be dropped: it hung).
    await asyncio.wait_for(asyncio.gather(*busy, first, renamed), 5)
    assert stream.calls[MAX_IN_FLIGHT:] == [["a"]]
    await users.ensure([{"id": "a", "name": "Ana Maria"}])  # sent with the later details
    assert len(stream.calls) == MAX_IN_FLIGHT + 1


async def test_a_caller_that_gives_up_does_not_cancel_the_call_others_wait_for() -> None:
    stream = Stream()
    stream.gate.clear()
    users = UserUpserts(stream.upsert)
    impatient = asyncio.create_task(users.ensure([{"id": "a"}, {"id": "b"}]))
    await asyncio.sleep(0.01)  # a and b are in a call, unanswered
    patient = asyncio.create_task(users.ensure([{"id": "b"}]))
    await asyncio.sleep(0.01)
    impatient.cancel()  # its deadline ran out
    with pytest.raises(asyncio.CancelledError):
        await impatient
    stream.gate.set()
    await asyncio.wait_for(patient, 5)
    await users.ensure([{"id": "a"}, {"id": "b"}])  # both remembered: no new call
    assert stream.calls == [["a", "b"]]


async def test_an_order_whose_users_went_in_two_calls_waits_for_both() -> None:
    stream = Stream()
    stream.gate.clear()
    users = UserUpserts(stream.upsert)
    first = asyncio.create_task(users.ensure([{"id": "a"}]))
    await asyncio.sleep(0.01)  # a's call is under way
    both = asyncio.create_task(users.ensure([{"id": "a"}, {"id": "b"}]))
    await asyncio.sleep(0.01)  # b went in a second call
    assert stream.calls == [["a"], ["b"]]
    stream.fail = ChatBackendError("stream down", transient=True)
    stream.gate.set()
    with pytest.raises(ChatBackendError):
        await asyncio.wait_for(both, 5)
    with pytest.raises(ChatBackendError):
        await first
