"""Malformed credentials do not put secrets in the logs.

As reported: an ``authorization`` metadata value carrying a valid service key followed by
one byte that is not UTF-8 made grpcio log the whole value at ERROR (logger
``grpc._cython.cygrpc``); ``Authorization: Bearer <valid session JWT>\\x01`` made aiohttp
log the whole JWT at ERROR (``aiohttp.server``).

Each attack is sent, byte for byte, to a gateway process logging JSON at DEBUG; then every
line of its output is parsed and searched for the key, or for the JWT and its signature.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.config import DEV_WEB_BACKEND_KEY
from tests.helpers.bridge import TOKEN_PATH, session_jwt
from tests.helpers.h2raw import grpc_call, grpc_headers
from tests.helpers.processes import GatewayChild, GatewayChildren, child_env
from tests.helpers.rpc import GATEWAY_METHOD, WEB_BACKEND

pytestmark = pytest.mark.slow


@pytest.fixture
async def child(tmp_path: Path, gateway_children: GatewayChildren) -> GatewayChild:
    env = {
        "CHAT_GATEWAY_LOG_FORMAT": "json",
        "CHAT_GATEWAY_LOG_LEVEL": "DEBUG",
        "CHAT_GATEWAY_ACCESS_LOG": "true",
    }
    return await gateway_children.start(child_env(tmp_path, env))


async def stopped_log(child: GatewayChild) -> list[dict[str, Any]]:
    """Stop the gateway (exit 0) and return every line of its output, each parsed."""
    assert await child.terminate() == 0, child.log_tail()
    records = []
    for n, line in enumerate(child.lines()):
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"log line {n} is not JSON: {line[:300]!r}")
    return records


def leaks(lines: list[str], secrets: list[str]) -> list[str]:
    """The lines that contain any of ``secrets``."""
    return [line[:300] for line in lines if any(secret in line for secret in secrets)]


async def test_service_key_with_a_non_utf8_byte_is_not_logged(child: GatewayChild) -> None:
    value = b"Bearer " + DEV_WEB_BACKEND_KEY.encode() + b"\xff"
    headers = grpc_headers(
        child.grpc_port, GATEWAY_METHOD + "IssueToken", (b"authorization", value)
    )
    reply = await grpc_call(
        child.grpc_port, headers, pb.IssueTokenRequest(user_id="buyer-1").SerializeToString()
    )
    status = reply.header(b"grpc-status")
    # The gateway is still fine afterwards.
    async with grpc.aio.insecure_channel(child.grpc_addr) as channel:
        token = await pb_grpc.ChatGatewayStub(channel).IssueToken(
            pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB_BACKEND, timeout=5
        )
    assert token.token
    records = await stopped_log(child)
    grpc_lines = [r for r in records if r["logger"].startswith("grpc") and r["level"] != "DEBUG"]
    print(  # noqa: T201 - figures for the report (pytest -s)
        f"non-UTF-8 key: grpc-status {status!r}, reset {reply.reset}, {len(records)} lines, "
        f"grpc's: {[(r['level'], r['msg'][:120]) for r in grpc_lines]}"
    )
    assert status is not None or reply.reset is not None, "the call got no answer"
    assert not leaks(child.lines(), [DEV_WEB_BACKEND_KEY])


async def test_session_jwt_with_a_control_character_is_not_logged(child: GatewayChild) -> None:
    jwt = session_jwt("buyer-1")
    signature = jwt.rsplit(".", 1)[1]
    request = (
        f"GET {TOKEN_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        + b"Authorization: Bearer "
        + jwt.encode()
        + b"\x01\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", child.http_port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await reader.read()  # the bridge closes after refusing it
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    records = await stopped_log(child)
    aiohttp_lines = [r for r in records if r["logger"].startswith("aiohttp")]
    print(  # noqa: T201 - figures for the report (pytest -s)
        f"JWT + \\x01: {head.splitlines()[0]!r} {body[:100]!r}; {len(records)} lines, "
        f"aiohttp's: {[(r['level'], r['msg'][:120]) for r in aiohttp_lines]}"
    )
    assert head.split(b" ")[1] == b"400", head
    assert json.loads(body)["error"]["code"] == "invalid_argument"
    assert not leaks(child.lines(), [jwt, signature])
