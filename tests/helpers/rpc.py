"""Talking to a gateway over gRPC: the dev service keys as call metadata, and status codes."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.config import DEV_ORDER_SERVICE_KEY, DEV_SUPPORT_TOOL_KEY, DEV_WEB_BACKEND_KEY

Metadata = tuple[tuple[str, str], ...]

ORDER_SERVICE: Metadata = (("authorization", f"Bearer {DEV_ORDER_SERVICE_KEY}"),)
"""Metadata of the dev profile's order service (EnsureOrderChannel, AuthorizeParticipant,
GetOrderChannel, CloseOrderChannel)."""
WEB_BACKEND: Metadata = (("authorization", f"Bearer {DEV_WEB_BACKEND_KEY}"),)
"""Metadata of the dev profile's web backend (IssueToken, AuthorizeParticipant,
RevokeUserTokens)."""
SUPPORT_TOOL: Metadata = (("authorization", f"Bearer {DEV_SUPPORT_TOOL_KEY}"),)
"""Metadata of the dev profile's support tool (GetOrderChannel, OpenDispute,
CloseOrderChannel, AuthorizeParticipant, RevokeUserTokens)."""

GATEWAY_METHOD = "/tradetrust.chat.v1.ChatGateway/"
"""The full-name prefix of every ChatGateway method."""


RETRY_REFUSED = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)
"""Channel option value for callers that send bursts past the server's stream limit: a
call the server refused (REFUSED_STREAM, i.e. UNAVAILABLE, never processed) is retried,
as the typed client does."""


def bursting_channel(addr: str) -> grpc.aio.Channel:
    """A channel to ``addr`` that retries refused calls (see :data:`RETRY_REFUSED`)."""
    return grpc.aio.insecure_channel(addr, options=[("grpc.service_config", RETRY_REFUSED)])


async def warmed(channel: grpc.aio.Channel) -> grpc.aio.Channel:
    """``channel`` once connected and past the HTTP/2 settings exchange (one health check):
    a burst of calls on a cold connection may go out before the client has learnt the
    server's stream limit (``CHAT_GATEWAY_GRPC_MAX_CONCURRENT_STREAMS``) and the calls past
    it are refused (UNAVAILABLE), as for any gRPC server with such a limit."""
    await channel.channel_ready()
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return channel


async def status_of(call: Awaitable[Any]) -> grpc.StatusCode:
    """The status ``call`` ends with (``OK`` if it answers)."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK
