"""Domain errors -> gRPC status, through the real interceptor on a loopback aio server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.domain import (
    GatewayError,
    InvalidArgumentError,
    NotParticipantError,
    OrderNotFoundError,
    ParticipantConflictError,
    RateLimitedError,
    UnavailableError,
)
from tests.helpers.raising import RaisingGateway
from tests.helpers.rpc import WEB_BACKEND


@pytest.fixture
async def raising(raising_gateway: RaisingGateway) -> AsyncIterator[tuple[RaisingGateway, Any]]:
    async with grpc.aio.insecure_channel(raising_gateway.addr) as channel:
        yield raising_gateway, pb_grpc.ChatGatewayStub(channel)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidArgumentError("buyer.user_id", "is required"), grpc.StatusCode.INVALID_ARGUMENT),
        (OrderNotFoundError("o"), grpc.StatusCode.NOT_FOUND),
        (ParticipantConflictError("o"), grpc.StatusCode.FAILED_PRECONDITION),
        (NotParticipantError("o"), grpc.StatusCode.PERMISSION_DENIED),
        (UnavailableError("registry down"), grpc.StatusCode.UNAVAILABLE),
        (RateLimitedError("slow down", 2.5), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (GatewayError("boom"), grpc.StatusCode.INTERNAL),
    ],
)
async def test_domain_error_maps_to_status(
    raising: tuple[RaisingGateway, Any], error: GatewayError, code: grpc.StatusCode
) -> None:
    servicer, stub = raising
    servicer.error = error
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.IssueToken(pb.IssueTokenRequest(user_id="u"), metadata=WEB_BACKEND)
    rpc_error = info.value
    assert rpc_error.code() == code
    assert rpc_error.details() == error.message
    status = rpc_status.from_call(rpc_error)
    assert status is not None
    kinds = {d.type_url.rsplit(".", 1)[-1] for d in status.details}
    assert "ErrorInfo" in kinds
    if isinstance(error, InvalidArgumentError):
        bad = error_details_pb2.BadRequest()
        next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
        assert bad.field_violations[0].field == "buyer.user_id"


async def test_unknown_exception_is_internal_and_not_leaked(
    raising: tuple[RaisingGateway, Any],
) -> None:
    servicer, stub = raising
    secret = "stack-detail-that-must-not-leak"
    servicer.error = RuntimeError(secret)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.IssueToken(pb.IssueTokenRequest(user_id="u"), metadata=WEB_BACKEND)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert secret not in (info.value.details() or "")
