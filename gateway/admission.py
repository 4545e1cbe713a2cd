"""Admission of new work: the concurrent-RPC cap and the drain on shutdown.

One :class:`Admission` per gateway, shared by the gRPC and HTTP edges. It counts requests
in flight (plain integers: everything runs on one event loop), refuses RPCs beyond the cap
and, once :meth:`Admission.drain` has begun, refuses all new work while what is in flight
finishes. Every admitted unit of work is released exactly once by the edge that admitted
it. Probes (gRPC health, ``/healthz``, ``/readyz``) and ``/metrics`` never pass through it,
so they keep answering while the gateway drains.
"""

from __future__ import annotations

import asyncio

from gateway.domain import OverloadedError, UnavailableError

__all__ = ["Admission"]


class Admission:
    """In-flight counters, the RPC cap and the draining flag."""

    def __init__(self, *, max_concurrent_rpcs: int) -> None:
        self.max_concurrent_rpcs = max_concurrent_rpcs
        self.rpcs = 0
        """ChatGateway RPCs in flight."""
        self.http = 0
        """HTTP bridge API requests in flight."""
        self.draining = False
        self._idle = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """RPCs and HTTP requests in flight."""
        return self.rpcs + self.http

    def admit_rpc(self) -> None:
        """Count one more ChatGateway RPC in flight.

        Raises:
            UnavailableError: the gateway is draining.
            OverloadedError: the concurrent-RPC cap is reached.
        """
        if self.draining:
            raise UnavailableError("the gateway is shutting down; retry on another replica")
        if self.rpcs >= self.max_concurrent_rpcs:
            raise OverloadedError(
                f"more than {self.max_concurrent_rpcs} RPCs in flight; retry shortly"
            )
        self.rpcs += 1

    def release_rpc(self) -> None:
        """One admitted RPC finished."""
        self.rpcs -= 1
        if self.draining and self.rpcs + self.http == 0:
            self._idle.set()

    def admit_http(self) -> None:
        """Count one more HTTP API request in flight.

        Raises:
            UnavailableError: the gateway is draining.
        """
        if self.draining:
            raise UnavailableError("the gateway is shutting down; retry")
        self.http += 1

    def release_http(self) -> None:
        """One admitted HTTP request finished."""
        self.http -= 1
        if self.draining and self.rpcs + self.http == 0:
            self._idle.set()

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new work from now on; wait until nothing is in flight (True) or the
        timeout passes (False)."""
        self.draining = True
        if self.in_flight == 0:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
