"""The token cache reuses a user's token until shortly before expiry, refreshes it then,
shares one fetch between concurrent callers, and never hands out an expired token."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from tradetrust.chat.client import (
    AsyncChatGatewayClient,
    AsyncTokenCache,
    ChatGatewayClient,
    ExpiredTokenError,
    InvalidatedError,
    IssuedToken,
    TokenCache,
    UnavailableError,
)

from gateway.config import DEV_WEB_BACKEND_KEY
from tests.helpers.bridge import stream_claims
from tests.helpers.clock import FakeClock
from tests.helpers.processes import GatewayProcess

HOUR = timedelta(hours=1)
MARGIN = timedelta(minutes=5)
START = datetime(2030, 1, 1, tzinfo=UTC)


class FakeIssuer:
    """Issues tokens living ``lifetime`` from the fake clock (minus ``skew``); can be held
    at a gate or made to fail."""

    def __init__(self, clock: FakeClock, lifetime: timedelta = HOUR) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.skew = timedelta(0)
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        self.failures = 0

    async def issue_token(self, user_id: str, ttl: timedelta | float | None = None) -> IssuedToken:
        self.calls.append(user_id)
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise UnavailableError.__new__(UnavailableError)  # shape irrelevant here
        n = len(self.calls)
        return IssuedToken(
            token=f"tok-{user_id}-{n}",
            expire_time=self.clock() - self.skew + self.lifetime,
            api_key="k",
            user_id=user_id,
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def issuer(clock: FakeClock) -> FakeIssuer:
    return FakeIssuer(clock)


async def test_reuses_until_the_margin_then_refreshes(clock: FakeClock, issuer: FakeIssuer) -> None:
    cache = AsyncTokenCache(issuer, refresh_margin=MARGIN, clock=clock)
    first = await cache.get("u")
    clock.advance(HOUR - MARGIN - timedelta(seconds=1))
    assert await cache.get("u") is first
    assert issuer.calls == ["u"]
    clock.advance(timedelta(seconds=1))  # exactly expire_time - margin: refresh now
    second = await cache.get("u")
    assert second is not first and second.token == "tok-u-2"
    assert second.expire_time == clock() + HOUR
    assert issuer.calls == ["u", "u"]


async def test_never_returns_an_expired_token(clock: FakeClock, issuer: FakeIssuer) -> None:
    rnd = random.Random(1234)
    cache = AsyncTokenCache(issuer, refresh_margin=MARGIN, clock=clock)
    for step in range(500):
        if step % 50 == 0:  # the gateway sometimes grants lifetimes shorter than the margin
            issuer.lifetime = rnd.choice([HOUR, timedelta(minutes=3), timedelta(seconds=61)])
        clock.advance(timedelta(seconds=rnd.uniform(0, 900)))
        token = await cache.get(rnd.choice(["a", "b", "c"]))
        assert token.expire_time > clock(), f"step {step}: expired token returned"
    assert len(issuer.calls) < 500  # and it did cache


async def test_short_lifetimes_are_still_reused_for_half_their_life(
    clock: FakeClock, issuer: FakeIssuer
) -> None:
    issuer.lifetime = timedelta(minutes=2)  # shorter than the 5-minute margin
    cache = AsyncTokenCache(issuer, refresh_margin=MARGIN, clock=clock)
    first = await cache.get("u")
    clock.advance(timedelta(seconds=59))
    assert await cache.get("u") is first
    clock.advance(timedelta(seconds=1))
    assert await cache.get("u") is not first


async def test_an_already_expired_token_is_refused_and_not_cached(
    clock: FakeClock, issuer: FakeIssuer
) -> None:
    issuer.skew = 2 * HOUR  # the gateway's clock is far behind ours
    cache = AsyncTokenCache(issuer, clock=clock)
    with pytest.raises(ExpiredTokenError):
        await cache.get("u")
    issuer.skew = timedelta(0)
    assert (await cache.get("u")).expire_time > clock()
    assert len(issuer.calls) == 2


async def test_concurrent_callers_share_one_fetch(clock: FakeClock, issuer: FakeIssuer) -> None:
    issuer.gate = asyncio.Event()
    cache = AsyncTokenCache(issuer, clock=clock)
    waiters = [asyncio.ensure_future(cache.get("u")) for _ in range(20)]
    other = asyncio.ensure_future(cache.get("v"))
    await asyncio.sleep(0.01)
    assert issuer.calls == ["u", "v"]
    issuer.gate.set()
    tokens = await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert all(t is tokens[0] for t in tokens)
    assert (await other).user_id == "v"
    assert issuer.calls == ["u", "v"]


async def test_a_failed_fetch_reaches_every_waiter_and_is_not_cached(
    clock: FakeClock, issuer: FakeIssuer
) -> None:
    issuer.gate, issuer.failures = asyncio.Event(), 1
    cache = AsyncTokenCache(issuer, clock=clock)
    waiters = [asyncio.ensure_future(cache.get("u")) for _ in range(3)]
    await asyncio.sleep(0.01)
    issuer.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 5)
    assert all(isinstance(r, UnavailableError) for r in results)
    assert (await cache.get("u")).token == "tok-u-2"


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(
    clock: FakeClock, issuer: FakeIssuer
) -> None:
    issuer.gate = asyncio.Event()
    cache = AsyncTokenCache(issuer, clock=clock)
    impatient = asyncio.ensure_future(cache.get("u"))
    patient = asyncio.ensure_future(cache.get("u"))
    await asyncio.sleep(0.01)
    impatient.cancel()
    issuer.gate.set()
    assert (await asyncio.wait_for(patient, 5)).token == "tok-u-1"
    assert impatient.cancelled()
    assert issuer.calls == ["u"]


async def test_least_recently_used_users_are_dropped(clock: FakeClock, issuer: FakeIssuer) -> None:
    cache = AsyncTokenCache(issuer, clock=clock, max_entries=2)
    await cache.get("a")
    await cache.get("b")
    await cache.get("a")
    await cache.get("c")  # drops b
    assert len(cache) == 2
    await cache.get("a")
    await cache.get("b")
    assert issuer.calls == ["a", "b", "c", "b"]


async def test_invalidate_forces_a_new_token(clock: FakeClock, issuer: FakeIssuer) -> None:
    cache = AsyncTokenCache(issuer, clock=clock)
    first = await cache.get("u")
    cache.invalidate("u")
    assert await cache.get("u") is not first


async def test_invalidate_during_a_fetch_fetches_again(
    clock: FakeClock, issuer: FakeIssuer
) -> None:
    cache = AsyncTokenCache(issuer, refresh_margin=MARGIN, clock=clock)
    issuer.gate = asyncio.Event()
    waiting = [asyncio.create_task(cache.get("u")) for _ in range(3)]
    await asyncio.sleep(0.01)
    cache.invalidate("u")  # e.g. the user's tokens were just revoked
    issuer.gate.set()
    got = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert issuer.calls == ["u", "u"]
    assert {t.token for t in got} == {"tok-u-2"}  # never the one issued before
    assert (await cache.get("u")).token == "tok-u-2"


async def test_invalidating_another_user_keeps_the_fetch(
    clock: FakeClock, issuer: FakeIssuer
) -> None:
    cache = AsyncTokenCache(issuer, refresh_margin=MARGIN, clock=clock)
    issuer.gate = asyncio.Event()
    waiting = asyncio.create_task(cache.get("u"))
    await asyncio.sleep(0.01)
    cache.invalidate("v")
    issuer.gate.set()
    assert (await asyncio.wait_for(waiting, 5)).token == "tok-u-1"
    assert issuer.calls == ["u"]


async def test_a_user_invalidated_during_every_fetch_gets_an_error(
    clock: FakeClock, issuer: FakeIssuer
) -> None:
    cache = AsyncTokenCache(issuer, refresh_margin=MARGIN, clock=clock)
    issuer.gate = asyncio.Event()
    waiting = asyncio.create_task(cache.get("u"))
    for _ in range(10):  # bounded: the cache gives up after a few fetches
        await asyncio.sleep(0.01)
        if waiting.done():
            break
        cache.invalidate("u")
        held, issuer.gate = issuer.gate, asyncio.Event()  # the next fetch waits again
        held.set()
    with pytest.raises(InvalidatedError):
        await asyncio.wait_for(waiting, 5)
    assert len(issuer.calls) == 3 and len(cache) == 0


async def test_close_cancels_in_flight_fetches(clock: FakeClock, issuer: FakeIssuer) -> None:
    issuer.gate = asyncio.Event()
    cache = AsyncTokenCache(issuer, clock=clock)
    waiter = asyncio.ensure_future(cache.get("u"))
    await asyncio.sleep(0.01)
    await cache.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiter, 5)


def test_ttl_must_exceed_the_margin(issuer: FakeIssuer) -> None:
    with pytest.raises(ValueError):
        AsyncTokenCache(issuer, ttl=timedelta(minutes=5), refresh_margin=MARGIN)


def test_the_margin_must_not_be_negative(issuer: FakeIssuer) -> None:
    with pytest.raises(ValueError):
        AsyncTokenCache(issuer, refresh_margin=-MARGIN)


class BlockingIssuer:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls = 0
        self.release = threading.Event()
        self.lock = threading.Lock()

    def issue_token(self, user_id: str, ttl: timedelta | float | None = None) -> IssuedToken:
        with self.lock:
            self.calls += 1
        assert self.release.wait(5)
        return IssuedToken(
            token=f"t{self.calls}", expire_time=self.clock() + HOUR, api_key="k", user_id=user_id
        )


def test_sync_cache_threads_share_one_fetch_and_refresh(clock: FakeClock) -> None:
    issuer = BlockingIssuer(clock)
    cache = TokenCache(issuer, refresh_margin=MARGIN, clock=clock)
    results: list[IssuedToken] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("u"))) for _ in range(8)]
    for t in threads:
        t.start()
    issuer.release.set()
    for t in threads:
        t.join(timeout=5)
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert issuer.calls == 1
    clock.advance(HOUR - MARGIN)
    assert cache.get("u") is not results[0]
    assert issuer.calls == 2


def test_sync_cache_invalidate_during_a_fetch_fetches_again(clock: FakeClock) -> None:
    issuer = BlockingIssuer(clock)
    cache = TokenCache(issuer, refresh_margin=MARGIN, clock=clock)
    results: list[IssuedToken] = []
    thread = threading.Thread(target=lambda: results.append(cache.get("u")))
    thread.start()
    deadline = time.monotonic() + 5
    while issuer.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    cache.invalidate("u")
    issuer.release.set()
    thread.join(timeout=5)
    assert issuer.calls == 2 and len(results) == 1
    assert results[0].token == "t2"
    assert cache.get("u") is results[0]


# --- against the real gateway ------------------------------------------------------------


@dataclass
class RealCache:
    """A token cache on the real gateway, with a clock of its own."""

    cache: AsyncTokenCache
    clock: FakeClock


@pytest.fixture
async def real_cache(gateway_proc: GatewayProcess) -> AsyncIterator[RealCache]:
    """Tokens of 120 s, refreshed 30 s before they expire, from the real gateway."""
    clock = FakeClock(datetime.now(UTC))
    async with AsyncChatGatewayClient(gateway_proc.addr, DEV_WEB_BACKEND_KEY) as client:
        ttl, margin = timedelta(seconds=120), timedelta(seconds=30)
        yield RealCache(AsyncTokenCache(client, ttl=ttl, refresh_margin=margin, clock=clock), clock)


async def test_real_gateway_token_is_what_the_cache_returns(real_cache: RealCache) -> None:
    first = await real_cache.cache.get("buyer-42")
    claims = stream_claims(first.token)
    assert claims["user_id"] == "buyer-42"
    assert claims["exp"] == int(first.expire_time.timestamp())
    expected = real_cache.clock() + timedelta(seconds=120)
    assert abs(first.expire_time - expected) < timedelta(seconds=5)


async def test_real_gateway_token_is_reused_until_the_refresh_point(real_cache: RealCache) -> None:
    cache, clock = real_cache.cache, real_cache.clock
    first = await cache.get("buyer-42")
    clock.advance(timedelta(seconds=60))
    assert await cache.get("buyer-42") is first  # reused: no call
    clock.advance(first.expire_time - timedelta(seconds=30) - clock())  # at the refresh point
    second = await cache.get("buyer-42")
    assert second is not first and second.expire_time >= first.expire_time


async def test_real_gateway_token_expired_by_our_clock_is_refused(real_cache: RealCache) -> None:
    await real_cache.cache.get("buyer-42")
    # Our clock jumps past anything the gateway would sign now: refused, not returned.
    real_cache.clock.advance(timedelta(seconds=240))
    with pytest.raises(ExpiredTokenError):
        await real_cache.cache.get("buyer-42")


def test_real_gateway_sync_cache(gateway_proc: GatewayProcess) -> None:
    clock = FakeClock(datetime.now(UTC))
    with ChatGatewayClient(gateway_proc.addr, DEV_WEB_BACKEND_KEY) as client:
        cache = TokenCache(client, ttl=timedelta(seconds=3600), clock=clock)
        first = cache.get("seller-7")
        clock.advance(timedelta(seconds=240))
        assert cache.get("seller-7") is first
        clock.advance(first.expire_time - timedelta(minutes=5) - clock())
        assert cache.get("seller-7") is not first
