"""A gateway on an event loop of its own thread, for synchronous tests (hypothesis) that
talk to it over real sockets and run code on its loop."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gateway.app import Gateway
from gateway.config import Settings

T = TypeVar("T")


class ThreadedGateway:
    """``with ThreadedGateway(settings) as tg:`` a started gateway; :meth:`call` runs a
    function on its loop, :meth:`exchange` sends bytes to its bridge and reads one answer."""

    def __init__(self, settings: Settings) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.gateway = Gateway(settings)

    def __enter__(self) -> ThreadedGateway:
        self._thread.start()
        try:
            self.run(self.gateway.start())
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self.gateway.stop(1.0))
        finally:
            self._close()

    def _close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        """Run ``coro`` on the gateway's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the gateway's loop (its state is the loop's alone)."""

        async def on_loop() -> T:
            return fn(*args)

        return self.run(on_loop())

    def exchange(self, data: bytes, timeout_s: float = 5.0) -> bytes:
        """Send ``data`` on a new connection to the bridge; the first response's bytes (its
        head and ``Content-Length`` body)."""
        with socket.create_connection(("127.0.0.1", self.gateway.http_port), timeout_s) as s:
            s.sendall(data)
            return read_response(s)


def read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a ``Content-Length`` body from ``sock`` (what arrived
    before the peer closed, if it closed first)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body[:length]
