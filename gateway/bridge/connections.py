"""The bridge's connection guard: a cap on open connections and a deadline for each
request head, so idle or slow clients cannot use up the process's file descriptors.

aiohttp has no limit on connections and no deadline for the first request of a
connection, so a client that opens connections and sends nothing (or half a header)
holds a descriptor each, for as long as it likes. :class:`ConnectionGuard` wraps aiohttp's
protocol factory:

- every connection must deliver a complete request head within ``header_timeout_s`` of
  its first byte (or of being accepted); otherwise it is closed. An idle keep-alive
  connection (nothing sent after a response) is aiohttp's to close, after its
  keep-alive timeout; the guard closes it itself while only the token fast lane has
  answered on it (aiohttp has not seen it);
- at most ``max_connections`` are open at once. A new connection beyond the cap evicts the
  longest-idle connection that has no request in progress; when every connection is
  busy, the new one is closed at once. A client's in-flight request is never cut off to
  admit another, and an attacker's idle connections cannot lock out everybody else.

- each read is offered to the guard's ``lane`` (:mod:`gateway.bridge.fastlane`) first,
  until the lane declines one: from then on aiohttp has the connection, and the lane is
  never asked again on it (aiohttp may hold part of a request). The lane is not asked
  while the client does not read what it was sent (aiohttp waits for it instead).

:class:`GuardedSite` is aiohttp's ``TCPSite`` with the guard in front.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import OrderedDict
from collections.abc import Callable
from typing import cast

from aiohttp import web
from aiohttp.tcp_helpers import tcp_keepalive, tcp_nodelay

from gateway.metrics import GatewayMetrics

logger = logging.getLogger(__name__)

__all__ = ["ConnectionGuard", "GuardedSite"]


class _Connection(asyncio.Protocol):
    """One connection: aiohttp's request handler behind the guard's bookkeeping."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self.transport: asyncio.Transport | None = None
        self._admitted = False
        self.busy = 0
        """Requests of this connection in progress (in the bridge's handlers)."""
        self._deadline: asyncio.TimerHandle | None = None
        self._lane = guard.lane
        """Asked first, until the connection hands bytes to aiohttp (then ``None``)."""
        self._answered_at = 0.0
        """When the lane last answered (the loop's clock): the keep-alive runs from it."""
        self._paused = False
        self._inner_made = False
        """aiohttp's protocol has been given the connection (:meth:`_hand_over`)."""
        self._idling = False
        """``_deadline`` is the keep-alive timer of a lane connection, not a head deadline."""

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        if not self._guard.admit(self):
            self.transport.abort()
            return
        self._admitted = True
        if self._lane is None:
            self._hand_over()
        else:  # what aiohttp would set; aiohttp itself meets the connection at hand-over
            tcp_nodelay(self.transport, True)
            tcp_keepalive(self.transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        self._guard.touch(self)
        if self._lane is not None:
            answer = None if self._paused else self._lane(data)
            if answer is not None:
                assert self.transport is not None
                self._guard.send(self.transport, answer)
                self._keep_alive()
                return
            self._lane = None
            self._disarm()
            self._guard.send_now()  # a lane answer still waiting goes before aiohttp's
            self._hand_over()
        if self._deadline is None and self.busy == 0:
            self._arm()  # a new request head begins on a kept-alive connection
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner_made else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._guard.forget(self)
        if self._inner_made:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._paused = True  # the lane stops answering; aiohttp's writer waits for drain
        if self._inner_made:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._paused = False
        if self._inner_made:
            self._inner.resume_writing()

    def _hand_over(self) -> None:
        """aiohttp has the connection from now on (it may hold part of a request): it
        meets it now, so its keep-alive and request handling start from here."""
        self._inner_made = True
        self._inner.connection_made(self.transport)  # type: ignore[arg-type]
        if self._paused:
            self._inner.pause_writing()

    # -- requests -----------------------------------------------------------------------

    def request_started(self) -> None:
        self.busy += 1
        self._disarm()

    def request_finished(self) -> None:
        self.busy = max(self.busy - 1, 0)
        self._guard.touch(self)

    def close(self, reason: str) -> None:
        self._disarm()
        if self.transport is not None and not self.transport.is_closing():
            logger.debug("closing a bridge connection: %s", reason)
            self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        self._idling = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.busy == 0:
            self._guard.timed_out(self)

    def _keep_alive(self) -> None:
        """After a lane answer: the connection idles, for the keep-alive timeout at most.
        One timer per connection, not one per answer: it checks the last answer's time."""
        loop = asyncio.get_running_loop()
        self._answered_at = loop.time()
        if not self._idling:
            self._disarm()  # the head deadline, on the connection's first answer
            self._deadline = loop.call_later(self._guard.keepalive_s, self._idle_expire)
            self._idling = True

    def _idle_expire(self) -> None:
        loop = asyncio.get_running_loop()
        left = self._answered_at + self._guard.keepalive_s - loop.time()
        if left > 0:
            self._deadline = loop.call_later(left, self._idle_expire)
        else:
            self.close(f"idle for the keep-alive timeout ({self._guard.keepalive_s:g}s)")


class ConnectionGuard:
    """Protocol factory wrapper: the connection cap and the request-head deadline."""

    def __init__(
        self,
        *,
        max_connections: int,
        header_timeout_s: float,
        keepalive_s: float = 75.0,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.factory: Callable[[], asyncio.Protocol] | None = None
        """aiohttp's protocol factory (the runner's server), set when the site starts."""
        self.lane: Callable[[bytes], bytes | None] | None = None
        """Answers a connection's read before aiohttp (:mod:`gateway.bridge.fastlane`), or
        declines with ``None``; set when the site starts."""
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.keepalive_s = keepalive_s
        self._metrics = metrics
        # open connections, least recently active first
        self._open: OrderedDict[_Connection, None] = OrderedDict()
        self._outbox: list[tuple[asyncio.Transport, bytes]] = []
        self._by_transport: dict[asyncio.BaseTransport, _Connection] = {}

    def __call__(self) -> asyncio.Protocol:
        assert self.factory is not None, "the guard's site has not started"
        return _Connection(self, self.factory())

    @property
    def open_connections(self) -> int:
        """Connections open now."""
        return len(self._open)

    def of(self, transport: asyncio.BaseTransport | None) -> _Connection | None:
        """The guarded connection of a request's transport."""
        return None if transport is None else self._by_transport.get(transport)

    def admit(self, connection: _Connection) -> bool:
        """Make room for ``connection``: evict the longest-idle connection if at the cap.
        ``False``: every connection is busy; the new one must be closed."""
        if len(self._open) >= self.max_connections:
            idle = next((c for c in self._open if c.busy == 0), None)
            if idle is None:
                self._count("refused")
                return False
            self._count("evicted")
            self._drop(idle)
            idle.close("connection cap reached; longest idle connection evicted")
        self._open[connection] = None
        assert connection.transport is not None
        self._by_transport[connection.transport] = connection
        return True

    def touch(self, connection: _Connection) -> None:
        if connection in self._open:
            self._open.move_to_end(connection)

    def timed_out(self, connection: _Connection) -> None:
        self._count("header_timeout")
        connection.close(f"no complete request head within {self.header_timeout_s:g}s")

    def send(self, transport: asyncio.Transport, answer: bytes) -> None:
        """Write ``answer`` at the end of this turn of the event loop, with the other lane
        answers of the turn, back to back. Each write wakes its client; written together,
        the later ones mostly find their clients awake, which costs the kernel far less
        than one wake-up per answer between reads (measured: ``make bench``, HTTP rows)."""
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self.send_now)
        self._outbox.append((transport, answer))

    def send_now(self) -> None:
        """Write the answers waiting for the end of the turn, in order."""
        outbox, self._outbox = self._outbox, []
        for transport, answer in outbox:
            if not transport.is_closing():
                transport.write(answer)

    def close_all(self, reason: str) -> None:
        """Close every open connection (aiohttp closes those it has; the lane's are the
        guard's to close)."""
        for connection in list(self._open):
            connection.close(reason)

    def forget(self, connection: _Connection) -> None:
        self._drop(connection)

    def _drop(self, connection: _Connection) -> None:
        self._open.pop(connection, None)
        if connection.transport is not None:
            self._by_transport.pop(connection.transport, None)

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.http_connections_closed.labels(outcome).inc()


class GuardedSite(web.BaseSite):
    """``aiohttp.web.TCPSite`` with a :class:`ConnectionGuard` in front of ``handler``, the
    factory of each connection's protocol."""

    __slots__ = ("_host", "_port", "_reuse_port", "_guard", "_handler")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        guard: ConnectionGuard,
        handler: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        backlog: int = 512,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._guard = guard
        self._handler = handler

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._guard.factory = self._handler
        self._server = await loop.create_server(
            self._guard,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self._reuse_port or None,
            family=socket.AF_UNSPEC,
        )
