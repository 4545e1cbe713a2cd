"""Talking to a gateway over gRPC: the dev service keys as call metadata, and status codes."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc

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


async def status_of(call: Awaitable[Any]) -> grpc.StatusCode:
    """The status ``call`` ends with (``OK`` if it answers)."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK
