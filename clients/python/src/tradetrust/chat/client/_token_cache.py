"""Per-user token caches for the web backend: the server-side half of the stream-chat
token-provider pattern (the browser asks again when its token expires; the backend answers
from cache until shortly before ``expire_time``)."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tradetrust.chat.client._models import IssuedToken

#: Returns the current time as an aware UTC datetime; injectable for tests.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


class ExpiredTokenError(Exception):
    """The gateway returned a token that is already expired by this host's clock (clock skew
    larger than the token lifetime); the cache refuses to hand it out."""


class InvalidatedError(Exception):
    """The user was invalidated during every one of the cache's fetches of a token (each
    one may carry tokens revoked meanwhile); ask again."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"{user_id!r} was invalidated while each of {_FETCHES} tokens was fetched")
        self.user_id = user_id


_FETCHES = 3
"""Fetches of one ``get`` when the user keeps being invalidated meanwhile."""


class AsyncTokenIssuer(Protocol):
    """What :class:`AsyncTokenCache` needs: :class:`AsyncChatGatewayClient` fits."""

    def issue_token(
        self, user_id: str, ttl: timedelta | float | None = None
    ) -> Awaitable[IssuedToken]: ...


class TokenIssuer(Protocol):
    """What :class:`TokenCache` needs: :class:`ChatGatewayClient` fits."""

    def issue_token(self, user_id: str, ttl: timedelta | float | None = None) -> IssuedToken: ...


@dataclass(frozen=True)
class _Entry:
    token: IssuedToken
    refresh_at: datetime


class _Policy:
    """Freshness rules shared by both caches."""

    def __init__(
        self,
        ttl: timedelta | None,
        refresh_margin: timedelta,
        clock: Clock,
        max_entries: int,
    ) -> None:
        if refresh_margin < timedelta(0):
            raise ValueError("refresh_margin must not be negative")
        if ttl is not None and ttl <= refresh_margin:
            raise ValueError("ttl must be longer than refresh_margin, or nothing is reused")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl = ttl
        self.refresh_margin = refresh_margin
        self.clock = clock
        self.max_entries = max_entries
        self.entries: OrderedDict[str, _Entry] = OrderedDict()
        # Invalidations, numbered, by user; kept only while some fetch is in flight (a
        # fetch that started before its user's invalidation must not cache its token).
        self.invalidations = 0
        self.invalidated: dict[str, int] = {}
        self.fetching = 0

    def invalidate(self, user_id: str) -> None:
        """Forget ``user_id``'s token, and any token a fetch in flight brings back."""
        self.entries.pop(user_id, None)
        if self.fetching:
            self.invalidations += 1
            self.invalidated[user_id] = self.invalidations

    def fetch_started(self) -> int:
        """Note a fetch starting; the mark to pass to :meth:`fetch_ended`."""
        self.fetching += 1
        return self.invalidations

    def fetch_ended(self, user_id: str, mark: int) -> bool:
        """Note a fetch ending; whether its token may be used (no invalidation of
        ``user_id`` since ``mark``)."""
        self.fetching -= 1
        usable = self.invalidated.get(user_id, 0) <= mark
        if not self.fetching:
            self.invalidated.clear()
        return usable

    def fresh(self, user_id: str) -> IssuedToken | None:
        """The cached token if it is still before its refresh time."""
        entry = self.entries.get(user_id)
        if entry is None:
            return None
        if self.clock() >= entry.refresh_at:
            del self.entries[user_id]
            return None
        self.entries.move_to_end(user_id)
        return entry.token

    def store(self, user_id: str, token: IssuedToken, fetched_at: datetime) -> IssuedToken:
        """Check a freshly issued token and cache it."""
        now = self.clock()
        if token.expire_time <= now:
            raise ExpiredTokenError(
                f"token for {user_id!r} expired at {token.expire_time.isoformat()} "
                f"(now {now.isoformat()}): check the clocks"
            )
        # Reuse a token for at least half its life, even when the gateway grants a lifetime
        # shorter than the margin (a smaller max_token_ttl).
        lifetime = token.expire_time - fetched_at
        margin = min(self.refresh_margin, lifetime / 2)
        self.entries[user_id] = _Entry(token, token.expire_time - margin)
        self.entries.move_to_end(user_id)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return token

    def checked(self, token: IssuedToken) -> IssuedToken:
        """``token`` unless it has expired meanwhile (a caller woke up late)."""
        if self.clock() >= token.expire_time:
            raise ExpiredTokenError(f"token for {token.user_id!r} expired while waiting")
        return token


class AsyncTokenCache:
    """Reuses each user's token until ``refresh_margin`` before its ``expire_time``.

    Concurrent ``get`` calls for one user share a single in-flight IssueToken call; a caller
    being cancelled does not cancel it for the others. A failed fetch is not cached: every
    waiter gets its exception and the next ``get`` tries again. Never returns a token that is
    expired by ``clock``.

    Args:
        issuer: usually an :class:`AsyncChatGatewayClient` with the web-backend key.
        ttl: lifetime to request; ``None``: the gateway's default (24 h).
        refresh_margin: how long before expiry a token stops being reused (capped at half
            the token's lifetime).
        clock: current time as an aware datetime.
        max_entries: users kept; the least recently used are dropped first.
    """

    def __init__(
        self,
        issuer: AsyncTokenIssuer,
        *,
        ttl: timedelta | None = None,
        refresh_margin: timedelta = timedelta(minutes=5),
        clock: Clock = utc_now,
        max_entries: int = 10_000,
    ) -> None:
        self._issuer = issuer
        self._policy = _Policy(ttl, refresh_margin, clock, max_entries)
        self._inflight: dict[str, asyncio.Task[IssuedToken]] = {}

    async def get(self, user_id: str) -> IssuedToken:
        """A valid token for ``user_id``, from cache or freshly issued."""
        token = self._policy.fresh(user_id)
        if token is not None:
            return token
        task = self._inflight.get(user_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._fetch(user_id), name=f"issue-token:{user_id}"
            )
            self._inflight[user_id] = task
            task.add_done_callback(lambda t: self._done(user_id, t))
        return self._policy.checked(await asyncio.shield(task))

    async def _fetch(self, user_id: str) -> IssuedToken:
        # A token issued before the user was invalidated (tokens revoked) is not handed
        # out: fetch again, a bounded number of times.
        for _ in range(_FETCHES):
            fetched_at = self._policy.clock()
            mark = self._policy.fetch_started()
            try:
                token = await self._issuer.issue_token(user_id, self._policy.ttl)
            finally:
                usable = self._policy.fetch_ended(user_id, mark)
            if usable:
                return self._policy.store(user_id, token, fetched_at)
        raise InvalidatedError(user_id)

    def _done(self, user_id: str, task: asyncio.Task[IssuedToken]) -> None:
        if self._inflight.get(user_id) is task:
            del self._inflight[user_id]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" noise when nobody waited

    def invalidate(self, user_id: str) -> None:
        """Forget the user's token (e.g. after the user was banned, logged out, or their
        tokens were revoked); a fetch already in flight for them fetches again."""
        self._policy.invalidate(user_id)

    def __len__(self) -> int:
        return len(self._policy.entries)

    async def close(self) -> None:
        """Cancel in-flight fetches and forget every token."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._policy.entries.clear()


class TokenCache:
    """Thread-safe blocking variant of :class:`AsyncTokenCache`: threads asking for the same
    user wait for one IssueToken call. Same arguments."""

    def __init__(
        self,
        issuer: TokenIssuer,
        *,
        ttl: timedelta | None = None,
        refresh_margin: timedelta = timedelta(minutes=5),
        clock: Clock = utc_now,
        max_entries: int = 10_000,
    ) -> None:
        self._issuer = issuer
        self._policy = _Policy(ttl, refresh_margin, clock, max_entries)
        self._lock = threading.Lock()
        self._user_locks: dict[str, threading.Lock] = {}

    def get(self, user_id: str) -> IssuedToken:
        """A valid token for ``user_id``, from cache or freshly issued."""
        with self._lock:
            token = self._policy.fresh(user_id)
            if token is not None:
                return token
            user_lock = self._user_locks.setdefault(user_id, threading.Lock())
        with user_lock:
            with self._lock:
                token = self._policy.fresh(user_id)  # another thread may have fetched it
            if token is not None:
                return self._policy.checked(token)
            for _ in range(_FETCHES):
                with self._lock:
                    fetched_at = self._policy.clock()
                    mark = self._policy.fetch_started()
                try:
                    token = self._issuer.issue_token(user_id, self._policy.ttl)
                finally:
                    with self._lock:
                        usable = self._policy.fetch_ended(user_id, mark)
                if usable:
                    break
            else:
                raise InvalidatedError(user_id)
            with self._lock:
                self._policy.store(user_id, token, fetched_at)
                if len(self._user_locks) > self._policy.max_entries:
                    for stale in [u for u in self._user_locks if u not in self._policy.entries]:
                        if stale != user_id:
                            del self._user_locks[stale]
            return token

    def invalidate(self, user_id: str) -> None:
        """Forget the user's token; a fetch already in flight for them fetches again."""
        with self._lock:
            self._policy.invalidate(user_id)

    def __len__(self) -> int:
        return len(self._policy.entries)
