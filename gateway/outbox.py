"""The durable outbox: make Stream match the registry, inline first, then in the background.

The registry holds the desired state (each order's channel: members, agents, frozen; each
user's token revocation) and marks what Stream does not have yet as pending. Whoever
holds a row's *claim* may work on it: a new or changed row is claimed by the RPC that
wrote it, for a bounded inline attempt (:meth:`ChannelSync.sync_inline`,
:meth:`ChannelSync.revoke_inline`); everything still pending after that is claimed by
:meth:`ChannelSync.run`, the background worker of some replica, with a lease (a crashed
claimer's rows are taken over once its lease expires), and retried with jittered
exponential backoff across outages, 429s and restarts.

A failed attempt always counts on top of the row's earlier failures, so the backoff only
grows until a success: nothing (inline tries included) can make an order's next attempt
come sooner. :meth:`ChannelSync.sync_claimable` (the HTTP bridge, for a pending order a
participant opens) tries only when the row is due and unclaimed, and only once at a time
per order in this process: every caller shares the one attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from gateway.chat import ChatBackend, ChatBackendError
from gateway.domain import GatewayError, OrderChannel, Revocation
from gateway.registry import OrderRegistry
from gateway.tokens import Clock, utc_now

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """Timing of sync attempts.

    Attributes:
        attempt_timeout_s: upper bound of one backend attempt.
        backoff_base_s: first retry delay; doubles per failed attempt.
        backoff_cap_s: longest retry delay.
        poll_interval_s: how often the worker looks for due rows when idle.
        lease_s: how long a claim lasts before another worker may take the row over.
        batch_size: rows claimed per poll (of each kind).
        concurrency: backend attempts in flight at once in the worker.
    """

    attempt_timeout_s: float = 5.0
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 300.0
    poll_interval_s: float = 1.0
    lease_s: float = 30.0
    batch_size: int = 50
    concurrency: int = 8

    def backoff_s(self, failed_attempts: int, rng: random.Random) -> float:
        """Equal-jitter exponential backoff after ``failed_attempts`` failures (>= 1)."""
        exponent = min(max(failed_attempts - 1, 0), 60)
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2.0**exponent)
        return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


@dataclass(frozen=True, slots=True)
class _Work:
    """One row's sync: the backend call, and how to record its outcome."""

    what: str
    attempt: Callable[[], Awaitable[None]]
    succeeded: Callable[[], Awaitable[None]]
    failed: Callable[[float, str], Awaitable[None]]
    """``failed(retry_in_s, error)``."""


class ChannelSync:
    """Brings Stream in line with the registry, inline and in the background."""

    def __init__(
        self,
        *,
        registry: OrderRegistry,
        backend: ChatBackend,
        policy: SyncPolicy | None = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._registry = registry
        self._backend = backend
        self._policy = policy or SyncPolicy()
        self._clock = clock
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._shared: dict[str, asyncio.Future[OrderChannel]] = {}

    @property
    def policy(self) -> SyncPolicy:
        """The timing policy in force."""
        return self._policy

    # -- inline ----------------------------------------------------------------------------

    async def sync_inline(
        self, channel: OrderChannel, budget_s: float, *, failed_before: int = 0
    ) -> OrderChannel:
        """Sync ``channel`` (claimed by the caller) within ``budget_s``, retrying transient
        failures. Returns the channel as recorded afterwards: synced, or still pending
        with a retry scheduled for the worker. Never raises for backend failures."""
        synced: list[OrderChannel] = []
        await self._inline(self._order_work(channel, synced), budget_s, failed_before)
        return synced[0] if synced else channel

    async def revoke_inline(self, revocation: Revocation, budget_s: float) -> Revocation:
        """Like :meth:`sync_inline`, for a user's token revocation."""
        done: list[Revocation] = []
        await self._inline(self._revocation_work(revocation, done), budget_s, 0)
        return done[0] if done else revocation

    async def sync_claimable(self, order_id: str, budget_s: float) -> OrderChannel | None:
        """One inline attempt at a pending order, if it is due and nobody holds it; every
        concurrent caller in this process shares it. ``None``: not attempted now (the row
        is backing off, claimed elsewhere, or no longer pending)."""
        shared = self._shared.get(order_id)
        if shared is None:
            shared = asyncio.ensure_future(self._claim_and_sync(order_id, budget_s))
            self._shared[order_id] = shared
            shared.add_done_callback(lambda _: self._shared.pop(order_id, None))
        try:
            return await asyncio.shield(shared)
        except _NotAttempted:
            return None

    async def _claim_and_sync(self, order_id: str, budget_s: float) -> OrderChannel:
        lease = timedelta(seconds=budget_s + self._policy.attempt_timeout_s)
        claimed = await self._registry.claim(order_id, lease=lease)
        if claimed is None:
            raise _NotAttempted
        return await self.sync_inline(
            claimed.channel, budget_s, failed_before=claimed.failed_attempts
        )

    async def _inline(self, work: _Work, budget_s: float, failed_before: int) -> None:
        deadline = time.monotonic() + budget_s
        failures = 0
        last_error: ChatBackendError | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(min(remaining, self._policy.attempt_timeout_s)):
                    await work.attempt()
            except TimeoutError:
                failures += 1
                last_error = ChatBackendError("attempt timed out", transient=True)
                continue
            except ChatBackendError as exc:
                failures += 1
                last_error = exc
                if not exc.transient:
                    break
                delay = self._delay_s(failed_before + failures, exc)
                if delay >= deadline - time.monotonic():
                    break
                await asyncio.sleep(delay)
                continue
            await work.succeeded()
            return
        await self._failed(work, failed_before + max(failures, 1), last_error)

    # -- the background worker -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """The background worker: sync due pending rows until ``stop`` is set."""
        lease = timedelta(seconds=self._policy.lease_s)
        limiter = asyncio.Semaphore(self._policy.concurrency)
        limit = self._policy.batch_size
        logger.info("sync worker started")
        while not stop.is_set():
            work: list[tuple[_Work, int]] = []
            try:
                for order in await self._registry.claim_pending(limit=limit, lease=lease):
                    work.append((self._order_work(order.channel, []), order.failed_attempts))
                revocations = await self._registry.claim_pending_revocations(
                    limit=limit, lease=lease
                )
                for claimed in revocations:
                    item = self._revocation_work(claimed.revocation, [])
                    work.append((item, claimed.failed_attempts))
            except GatewayError as exc:
                logger.warning("sync worker: cannot claim pending rows: %s", exc)
            if work:
                async with asyncio.TaskGroup() as group:
                    for item, failed_before in work:
                        group.create_task(self._attempt(item, failed_before, limiter))
                continue
            self._wake.clear()
            await _wait_any(stop, self._wake, self._policy.poll_interval_s)
        logger.info("sync worker stopped")

    def wake(self) -> None:
        """Ask the worker to look for due rows now rather than at its next poll."""
        self._wake.set()

    async def _attempt(self, work: _Work, failed_before: int, limiter: asyncio.Semaphore) -> None:
        async with limiter:
            try:
                async with asyncio.timeout(self._policy.attempt_timeout_s):
                    await work.attempt()
            except TimeoutError:
                timeout = ChatBackendError("attempt timed out", transient=True)
                await self._failed(work, failed_before + 1, timeout)
                return
            except ChatBackendError as exc:
                await self._failed(work, failed_before + 1, exc)
                return
            await work.succeeded()

    # -- the two kinds of rows -------------------------------------------------------------

    def _order_work(self, channel: OrderChannel, synced: list[OrderChannel]) -> _Work:
        order_id = channel.order_id

        async def succeeded() -> None:
            try:
                recorded = await self._registry.mark_synced(order_id, channel.version)
            except GatewayError as exc:
                # Stream has it; the registry will say so after the worker's next pass.
                logger.warning("order %s synced but not recorded: %s", order_id, exc)
                return
            synced.append(recorded)
            logger.info(
                "order %s synced to %s (version %d)", order_id, channel.cid, channel.version
            )

        async def failed(retry_in_s: float, error: str) -> None:
            retry_at = self._clock() + timedelta(seconds=retry_in_s)
            await self._registry.record_failure(order_id, retry_at=retry_at, error=error)

        return _Work(
            f"order {order_id}", lambda: self._backend.sync_channel(channel), succeeded, failed
        )

    def _revocation_work(self, revocation: Revocation, done: list[Revocation]) -> _Work:
        user_id, before = revocation.user_id, revocation.revoke_time

        async def succeeded() -> None:
            try:
                done.append(await self._registry.mark_revocation_synced(user_id, before))
            except GatewayError as exc:
                logger.warning("revocation of %s sent but not recorded: %s", user_id, exc)
                return
            logger.info("tokens of %s issued before %s revoked", user_id, before.isoformat())

        async def failed(retry_in_s: float, error: str) -> None:
            retry_at = self._clock() + timedelta(seconds=retry_in_s)
            await self._registry.record_revocation_failure(user_id, retry_at=retry_at, error=error)

        return _Work(
            f"revocation of {user_id}",
            lambda: self._backend.revoke_tokens(user_id, before),
            succeeded,
            failed,
        )

    # -- failures --------------------------------------------------------------------------

    def _delay_s(self, failures: int, error: ChatBackendError | None) -> float:
        delay = self._policy.backoff_s(failures, self._rng)
        if error is not None and error.retry_after_s is not None:
            delay = max(delay, error.retry_after_s)
        return delay

    async def _failed(self, work: _Work, failures: int, error: ChatBackendError | None) -> None:
        delay = self._delay_s(failures, error)
        reason = str(error) if error is not None else "no attempt fitted the time budget"
        logger.warning(
            "%s still pending after %d failed attempt(s): %s; retry in %.1fs",
            work.what,
            failures,
            reason,
            delay,
        )
        try:
            await work.failed(delay, reason)
        except GatewayError as exc:
            logger.warning("%s: cannot record the sync failure: %s", work.what, exc)


class _NotAttempted(Exception):
    """:meth:`ChannelSync.sync_claimable` found the row not claimable."""


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout_s: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
