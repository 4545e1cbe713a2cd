"""A steady load of new orders: clients that keep placing orders, each retrying its order
until the gateway acknowledges it (as the order service does), recording what they saw."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from types import TracebackType

import grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from tests.helpers.builders import own_parties_request
from tests.helpers.polling import eventually
from tests.helpers.rpc import ORDER_SERVICE, Metadata

MAX_ORDERS_PER_CLIENT = 100_000


class OrderLoad:
    """``async with OrderLoad(stubs) as load:`` runs ``clients`` concurrent clients until the
    block ends. A client places order after order (``<prefix><n>``); a failed call is retried
    (at most ``max_attempts`` times, 50 ms apart), each retry on the next stub, so with two
    stubs a retry goes to the other gateway."""

    def __init__(
        self,
        stubs: Sequence[pb_grpc.ChatGatewayAsyncStub],
        *,
        clients: int,
        prefix: str = "ord-",
        call_timeout_s: float = 15.0,
        max_attempts: int = 300,
        request: Callable[[str], pb.EnsureOrderChannelRequest] = own_parties_request,
        metadata: Metadata = ORDER_SERVICE,
    ) -> None:
        self.stubs = stubs
        self.clients = clients
        self.prefix = prefix
        self.call_timeout_s = call_timeout_s
        self.max_attempts = max_attempts
        self.request = request
        self.metadata = metadata
        self.created_flags: dict[str, list[bool]] = defaultdict(list)
        """``created`` of every acknowledged call, per order."""
        self.attempted: set[str] = set()
        """Every order a client tried to place."""
        self.failures: list[tuple[float, grpc.StatusCode]] = []
        """(latency in seconds, status) of every failed call."""
        self.ok_times: list[float] = []
        """When (monotonic) each acknowledged call returned."""
        self._ids = itertools.count()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _client(self, number: int) -> None:
        for _ in range(MAX_ORDERS_PER_CLIENT):  # bounded; the block's end stops it far sooner
            if self._stop.is_set():
                return
            order_id = f"{self.prefix}{next(self._ids)}"
            self.attempted.add(order_id)
            for attempt in range(self.max_attempts):  # bounded retries of this one order
                stub = self.stubs[(number + attempt) % len(self.stubs)]
                started = time.monotonic()
                try:
                    reply = await stub.EnsureOrderChannel(
                        self.request(order_id), metadata=self.metadata, timeout=self.call_timeout_s
                    )
                except grpc.aio.AioRpcError as exc:
                    self.failures.append((time.monotonic() - started, exc.code()))
                    await asyncio.sleep(0.05)
                    continue
                self.created_flags[order_id].append(reply.created)
                self.ok_times.append(time.monotonic())
                break
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> OrderLoad:
        self._tasks = [asyncio.create_task(self._client(n)) for n in range(self.clients)]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the clients (each finishes its current order) and wait for them; a client
        that crashed fails the test here."""
        self._stop.set()
        async with asyncio.timeout(60):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if exc is None:
            for task in self._tasks:
                task.result()

    async def recovery_after(self, moment: float, timeout_s: float = 15.0) -> float:
        """Seconds from ``moment`` (monotonic) to the first call acknowledged after it,
        waiting up to ``timeout_s`` for one."""
        await eventually(
            lambda: bool(self.ok_times) and self.ok_times[-1] > moment,
            timeout_s=timeout_s,
            message="no call was acknowledged",
        )
        return min((t for t in self.ok_times if t > moment), default=math.inf) - moment
