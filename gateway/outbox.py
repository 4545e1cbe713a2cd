"""Durable outbox sync: registry orders that Stream does not have yet -> Stream.

The registry row is the outbox. :meth:`ChannelSync.sync_inline` gives a new order a
bounded first attempt inside the RPC; whatever is still pending after that is picked up
by :meth:`ChannelSync.run`, the background worker, which claims due orders with a lease
(so a crashed claimer's work is taken over once its lease expires) and retries with
jittered exponential backoff, across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

from gateway.chat import ChatBackend, ChatBackendError
from gateway.domain import GatewayError, OrderChannel
from gateway.registry import OrderRegistry
from gateway.tokens import Clock, utc_now

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """Timing of sync attempts.

    Attributes:
        attempt_timeout_s: upper bound of one backend attempt.
        backoff_base_s: first retry delay; doubles per failed attempt.
        backoff_cap_s: longest retry delay.
        poll_interval_s: how often the worker looks for due orders when idle.
        lease_s: how long a claim lasts before another worker may take the order over.
        batch_size: orders claimed per poll.
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
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2.0 ** max(failed_attempts - 1, 0))
        return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


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

    @property
    def policy(self) -> SyncPolicy:
        """The timing policy in force."""
        return self._policy

    async def sync_inline(self, channel: OrderChannel, budget_s: float) -> OrderChannel:
        """Try to sync ``channel`` within ``budget_s`` seconds, retrying transient failures.

        Returns the channel as recorded afterwards: synced, or still pending with a retry
        scheduled for the background worker. Never raises for backend failures.
        """
        deadline = time.monotonic() + budget_s
        failures = 0
        last_error: ChatBackendError | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(min(remaining, self._policy.attempt_timeout_s)):
                    await self._backend.ensure_channel(channel)
            except TimeoutError:
                failures += 1
                last_error = ChatBackendError("attempt timed out", transient=True)
                continue
            except ChatBackendError as exc:
                failures += 1
                last_error = exc
                if not exc.transient:
                    break
                delay = self._delay_s(failures, exc)
                if delay >= deadline - time.monotonic():
                    break
                await asyncio.sleep(delay)
                continue
            return await self._mark_synced(channel)
        await self._record_failure(channel, failures, last_error)
        return channel

    async def run(self, stop: asyncio.Event) -> None:
        """The background worker: sync due pending orders until ``stop`` is set."""
        lease = timedelta(seconds=self._policy.lease_s)
        limiter = asyncio.Semaphore(self._policy.concurrency)
        logger.info("sync worker started")
        while not stop.is_set():
            try:
                claimed = await self._registry.claim_pending(
                    limit=self._policy.batch_size, lease=lease
                )
            except GatewayError as exc:
                logger.warning("sync worker: cannot claim pending orders: %s", exc)
                claimed = []
            if claimed:
                async with asyncio.TaskGroup() as group:
                    for item in claimed:
                        group.create_task(
                            self._attempt(item.channel, item.failed_attempts, limiter)
                        )
                continue
            self._wake.clear()
            await _wait_any(stop, self._wake, self._policy.poll_interval_s)
        logger.info("sync worker stopped")

    def wake(self) -> None:
        """Ask the worker to look for due orders now rather than at its next poll."""
        self._wake.set()

    async def _attempt(
        self, channel: OrderChannel, failed_before: int, limiter: asyncio.Semaphore
    ) -> None:
        async with limiter:
            try:
                async with asyncio.timeout(self._policy.attempt_timeout_s):
                    await self._backend.ensure_channel(channel)
            except TimeoutError:
                timeout = ChatBackendError("attempt timed out", transient=True)
                await self._record_failure(channel, failed_before + 1, timeout)
                return
            except ChatBackendError as exc:
                await self._record_failure(channel, failed_before + 1, exc)
                return
            await self._mark_synced(channel)

    def _delay_s(self, failures: int, error: ChatBackendError | None) -> float:
        delay = self._policy.backoff_s(failures, self._rng)
        if error is not None and error.retry_after_s is not None:
            delay = max(delay, error.retry_after_s)
        return delay

    async def _mark_synced(self, channel: OrderChannel) -> OrderChannel:
        try:
            synced = await self._registry.mark_synced(channel.order_id)
        except GatewayError as exc:
            # Stream has it; the registry will say so after the worker's next (idempotent) pass.
            logger.warning("order %s synced but not recorded: %s", channel.order_id, exc)
            return channel
        logger.info("order %s synced to %s", channel.order_id, channel.cid)
        return synced

    async def _record_failure(
        self, channel: OrderChannel, failures: int, error: ChatBackendError | None
    ) -> None:
        delay = self._delay_s(max(failures, 1), error)
        reason = str(error) if error is not None else "no attempt fitted the time budget"
        logger.warning(
            "order %s still pending after %d failed attempt(s): %s; retry in %.1fs",
            channel.order_id,
            failures,
            reason,
            delay,
        )
        try:
            await self._registry.record_failure(
                channel.order_id, retry_at=self._clock() + timedelta(seconds=delay), error=reason
            )
        except GatewayError as exc:
            logger.warning("order %s: cannot record sync failure: %s", channel.order_id, exc)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout_s: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
