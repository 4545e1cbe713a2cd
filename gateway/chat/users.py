"""Stream users, upserted once per process and in shared batches.

Every order channel needs its users in Stream before it is created. A buyer or seller
who was already upserted by this process with the same name and image needs no new
upsert. New users are sent at the end of the event loop's turn, so the orders that
arrived together share one call (Stream takes up to 100 users per call); up to
:data:`MAX_IN_FLIGHT` calls run at once, and users arriving while all of them are busy
wait and go together in the next. A user already on the way (queued, or in a call under
way with the same details) is waited for, not sent again. So a burst of new orders of
returning users costs no upsert at all, and one of new users at most one upsert per
order, usually fewer, without an order waiting behind another order's call while a slot
is free.

What this process upserted is remembered (bounded, least recently used first); a user
changed elsewhere (another replica, the dashboard) is upserted again when an order names
them with other details. Failures are not remembered: every waiter of a failed batch gets
the error, and the next call tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Sequence

from gateway.lru import BoundedCache

MAX_BATCH = 100
"""Users per upsert call (Stream's limit)."""

MAX_IN_FLIGHT = 16
"""Upsert calls running at once; past it, new users wait and share the next call.

Measured with 64 new orders of new users in flight and Stream answering after 50 ms: at 4,
the first batches of a burst took every slot and the rest of the burst waited for one to
free (an order's users waited 9-16 ms beyond their call, SQLite and PostgreSQL); at 16 they
wait 2-7 ms, for 1.3-1.7 Stream calls per order instead of 1.2 (the bound is 2)."""

User = dict[str, str]
_Entry = tuple[User, "asyncio.Future[None]"]
"""A user to upsert, and the future its waiters wait on."""
Upsert = Callable[[list[User]], Awaitable[object]]


def _details(user: User) -> tuple[str, str]:
    return user.get("name", ""), user.get("image", "")


class UserUpserts:
    """Upserts users through ``upsert`` (one Stream call per batch), each user once."""

    def __init__(self, upsert: Upsert, *, remember: int = 100_000) -> None:
        self._upsert = upsert
        self._known: BoundedCache[str, tuple[str, str]] = BoundedCache(remember)
        self._queued: dict[str, _Entry] = {}
        """Users waiting for a call, in arrival order."""
        self._in_flight: dict[str, _Entry] = {}
        """Users whose call is under way."""
        self._sending: set[asyncio.Task[None]] = set()
        self._flush_due = False
        self._closed = False

    async def ensure(self, users: Sequence[User]) -> None:
        """Return once Stream has every one of ``users`` with these details.

        Raises:
            ChatBackendError: the upsert that carried one of them failed.
        """
        waits: list[asyncio.Future[None]] = []
        for user in users:
            uid = user["id"]
            details = _details(user)
            if self._known.get(uid) == details:
                continue
            queued = self._queued.get(uid)
            if queued is not None:
                # Not sent yet: it goes with the details asked for last, for every waiter.
                self._queued[uid] = (user, queued[1])
                waits.append(queued[1])
                continue
            sending = self._in_flight.get(uid)
            if sending is not None and _details(sending[0]) == details:
                waits.append(sending[1])
                continue
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.add_done_callback(_retrieved)  # its waiters may all have given up
            self._queued[uid] = (user, done)
            waits.append(done)
        if not waits:
            return
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)
        await _all_done(waits)

    def _flush(self) -> None:
        """Start calls for what is queued, while a slot is free."""
        self._flush_due = False
        while not self._closed and self._queued and len(self._sending) < MAX_IN_FLIGHT:
            batch = list(itertools.islice(self._queued.items(), MAX_BATCH))
            for uid, entry in batch:
                del self._queued[uid]
                self._in_flight[uid] = entry
            task = asyncio.create_task(self._send(batch), name="stream-user-upserts")
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if self._queued and not self._flush_due:
            self._flush()

    async def _send(self, batch: list[tuple[str, _Entry]]) -> None:
        try:
            await self._upsert([user for _, (user, _) in batch])
        except asyncio.CancelledError:
            for _, (_, done) in batch:
                done.cancel()
            raise
        except Exception as exc:
            for _, (_, done) in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        finally:
            for uid, (_, done) in batch:  # no longer in flight, unless a newer call is
                sending = self._in_flight.get(uid)
                if sending is not None and sending[1] is done:
                    del self._in_flight[uid]
        for uid, (user, done) in batch:
            self._known.put(uid, _details(user))
            if not done.done():
                done.set_result(None)

    async def close(self) -> None:
        """Stop sending: upserts in flight are cancelled, their waiters get the error;
        users still queued get it too."""
        self._closed = True
        sending, self._sending = list(self._sending), set()
        for task in sending:
            task.cancel()
        for task in sending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        queued, self._queued = list(self._queued.values()), {}
        for _, done in queued:
            done.cancel()
        self._in_flight.clear()

    def forget(self, user_id: str) -> None:
        """Upsert ``user_id`` again next time (its Stream record may have changed)."""
        self._known.pop(user_id)


def _all_done(waits: list[asyncio.Future[None]]) -> asyncio.Future[None]:
    """A future of the caller's own, done once every one of ``waits`` is: with the first
    failure among them, or cancelled if one was. A caller that gives up (its deadline)
    cancels only this one; ``waits`` are shared with other callers and go on."""
    mine: asyncio.Future[None] = waits[0].get_loop().create_future()
    left = len(waits)

    def one_done(done: asyncio.Future[None]) -> None:
        nonlocal left
        if mine.done():
            return
        if done.cancelled():
            mine.cancel()
        elif (error := done.exception()) is not None:
            mine.set_exception(error)
        else:
            left -= 1
            if not left:
                mine.set_result(None)

    for wait in waits:
        wait.add_done_callback(one_done)
    return mine


def _retrieved(done: asyncio.Future[None]) -> None:
    """Mark a failed upsert's outcome as seen: the callers that awaited it saw it, and
    one that gave up must not leave "exception never retrieved" in the log."""
    if not done.cancelled():
        done.exception()
