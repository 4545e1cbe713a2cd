"""Garbage at the gRPC port: raw bytes, a valid HTTP/2 preface followed by nonsense,
truncated and oversized frames, HTTP/1.1, and malformed protobuf in well-formed gRPC calls.
Afterwards the server still answers a health check and a real RPC."""

from __future__ import annotations

import asyncio
import random
import struct

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from tests.helpers.rpc import GATEWAY_METHOD, ORDER_SERVICE, WEB_BACKEND

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind: int, flags: int, stream: int, payload: bytes, length: int | None = None) -> bytes:
    """An HTTP/2 frame; ``length`` may lie about the payload size."""
    size = len(payload) if length is None else length
    return struct.pack(">I", size)[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def payloads() -> list[bytes]:
    rng = random.Random(7)
    out = [rng.randbytes(n) for n in (1, 7, 24, 100, 4096, 70_000)]
    settings = frame(0x4, 0, 0, b"")
    out += [
        PREFACE + rng.randbytes(64),
        PREFACE + settings + rng.randbytes(200),
        PREFACE + settings + frame(0x1, 0x4, 1, b"\x82\x86", length=5000),  # truncated HEADERS
        PREFACE + settings + frame(0x0, 0x1, 1, b"\x00\x00\x00\x00\x05abc"),  # DATA, no HEADERS
        PREFACE + settings + frame(0x1, 0x5, 2, rng.randbytes(30)),  # even stream id, bad HPACK
        PREFACE + frame(0x4, 0, 0, b"\x00\x04\xff\xff\xff\xff"),  # window size out of range
        PREFACE + settings + frame(0x8, 0, 0, b"\x7f\xff\xff\xff"),  # WINDOW_UPDATE overflow
        PREFACE[:10],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rng.randbytes(40),  # a TLS hello
    ]
    return out


async def blast(port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(2):
            await reader.read(65536)  # whatever the server says (GOAWAY) or EOF
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def still_serving(port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        health = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        token = await pb_grpc.ChatGatewayStub(ch).IssueToken(
            pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB_BACKEND, timeout=5
        )
        assert token.token


async def test_raw_garbage_does_not_stop_the_server(gateway: Gateway) -> None:
    for data in payloads():
        await blast(gateway.grpc_port, data)
    # And many at once.
    await asyncio.gather(*(blast(gateway.grpc_port, data) for data in payloads()))
    await still_serving(gateway.grpc_port)


async def test_malformed_protobuf_in_valid_grpc_calls(gateway: Gateway) -> None:
    rng = random.Random(11)
    bodies = [
        b"\xff\xff\xff\xff",
        b"\x0a\xff\xff\xff\xff\x0f",  # field 1, length far beyond the body
        b"\x0a\x05ab",  # truncated string
        b"\x08" + b"\xff" * 11,  # varint too long
        b"\x0b\x0c",  # group markers
        b"\x12\x03\x0a\x01\xc3",  # nested Participant with invalid UTF-8
        *(rng.randbytes(n) for n in (3, 50, 500, 5000)),
        b"\x0a" + b"\x80\x80\x04" + b"a" * 65536,  # over the 64 KiB message limit
    ]
    codes: set[grpc.StatusCode] = set()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as ch:
        for method in ("IssueToken", "EnsureOrderChannel", "AuthorizeParticipant"):
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
                GATEWAY_METHOD + method
            )
            for body in bodies:
                for metadata in (WEB_BACKEND, ORDER_SERVICE, ()):
                    try:
                        await call(body, metadata=metadata, timeout=5)
                    except grpc.aio.AioRpcError as exc:
                        codes.add(exc.code())
    # Garbage never reaches a handler as a valid request, and nothing crashes the server.
    assert grpc.StatusCode.UNAVAILABLE not in codes
    assert grpc.StatusCode.DEADLINE_EXCEEDED not in codes
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes  # the message size limit
    assert gateway.admission.rpcs == 0
    await still_serving(gateway.grpc_port)
