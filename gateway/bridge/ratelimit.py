"""Per-user token-bucket rate limiting for the HTTP bridge (in memory, per process)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from gateway.domain import RateLimitedError
from gateway.lru import BoundedCache


class TokenBucketLimiter:
    """One bucket of ``burst`` requests per key, refilled at ``rate_per_s``.

    Memory is bounded: past ``max_keys`` buckets the least recently used one is dropped
    (it forgets, in the caller's favour, a key nobody has used for the longest time).
    """

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        max_keys: int = 100_000,
        what: str = "token requests",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate_per_s > 0, burst >= 1 and max_keys >= 1 are required")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._what = what
        # key -> (tokens left, time of last update)
        self._buckets: BoundedCache[str, tuple[float, float]] = BoundedCache(max_keys)

    def acquire(self, key: str) -> None:
        """Take one request from ``key``'s bucket.

        Raises:
            RateLimitedError: the bucket is empty; ``retry_after_s`` is when one refills.
        """
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets.put(key, (tokens, now))
            retry_after = math.ceil((1.0 - tokens) / self._rate)
            raise RateLimitedError(f"too many {self._what}; retry later", float(retry_after))
        self._buckets.put(key, (tokens - 1.0, now))
