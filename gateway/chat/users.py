"""Stream users, upserted once per process and in shared batches.

Every order channel needs its users in Stream before it is created. A buyer or seller
who was already upserted by this process with the same name and image needs no new
upsert; new users of orders that arrive while an upsert is in flight wait for the next
one and go in it together (Stream takes up to 100 users per call). So a burst of new
orders of returning users costs no upsert at all, and one of new users about one upsert
per batch instead of one per order.

What this process upserted is remembered (bounded, least recently used first); a user
changed elsewhere (another replica, the dashboard) is upserted again when an order names
them with other details. Failures are not remembered: every waiter of a failed batch gets
the error, and the next call tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from gateway.lru import BoundedCache

MAX_BATCH = 100
"""Users per upsert call (Stream's limit)."""

User = dict[str, str]
Upsert = Callable[[list[User]], Awaitable[object]]


def _details(user: User) -> tuple[str, str]:
    return user.get("name", ""), user.get("image", "")


class UserUpserts:
    """Upserts users through ``upsert`` (one Stream call per batch), each user once."""

    def __init__(self, upsert: Upsert, *, remember: int = 100_000) -> None:
        self._upsert = upsert
        self._known: BoundedCache[str, tuple[str, str]] = BoundedCache(remember)
        self._queued: dict[str, tuple[User, asyncio.Future[None]]] = {}
        self._running: asyncio.Task[None] | None = None

    async def ensure(self, users: Sequence[User]) -> None:
        """Return once Stream has every one of ``users`` with these details.

        Raises:
            ChatBackendError: the upsert that carried one of them failed.
        """
        waits: list[asyncio.Future[None]] = []
        for user in users:
            uid = user["id"]
            if self._known.get(uid) == _details(user):
                continue
            queued = self._queued.get(uid)
            if queued is not None and _details(queued[0]) == _details(user):
                waits.append(queued[1])
                continue
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._queued[uid] = (user, done)
            waits.append(done)
        if not waits:
            return
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain(), name="stream-user-upserts")
        # Shielded: a caller that gives up (its deadline) must not cancel others' batch.
        await asyncio.gather(*(asyncio.shield(w) for w in waits))

    async def _drain(self) -> None:
        """Send what is queued, in batches, until nothing is."""
        while self._queued:
            batch = list(self._queued.items())[:MAX_BATCH]
            for uid, _ in batch:
                del self._queued[uid]
            try:
                await self._upsert([user for _, (user, _) in batch])
            except BaseException as exc:
                for _, (_, done) in batch:
                    if not done.done():
                        done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for uid, (user, done) in batch:
                self._known.put(uid, _details(user))
                if not done.done():
                    done.set_result(None)

    async def close(self) -> None:
        """Stop sending: an upsert in flight is cancelled, its waiters get the error."""
        running, self._running = self._running, None
        if running is not None and not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

    def forget(self, user_id: str) -> None:
        """Upsert ``user_id`` again next time (its Stream record may have changed)."""
        self._known.pop(user_id)
