"""Domain errors -> gRPC status, through the real interceptors on an aio test server."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_interceptor.testing import DummyRequest, dummy_client
from grpc_status import rpc_status

from gateway.domain import (
    GatewayError,
    InvalidArgumentError,
    NotParticipantError,
    OrderNotFoundError,
    ParticipantConflictError,
    RateLimitedError,
    UnavailableError,
)
from gateway.rpc.errors import ErrorMappingInterceptor

INTERCEPTORS: Any = [ErrorMappingInterceptor()]


def raising(error: Exception) -> Any:
    def special_case(_: str, __: Any) -> str:
        raise error

    return special_case


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
def test_domain_error_maps_to_status(error: GatewayError, code: grpc.StatusCode) -> None:
    with dummy_client({"x": raising(error)}, INTERCEPTORS, aio_server=True) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.Execute(DummyRequest(input="x"))
    rpc_error: Any = info.value
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


def test_unknown_exception_is_internal_and_not_leaked() -> None:
    secret = "stack-detail-that-must-not-leak"
    with dummy_client({"x": raising(RuntimeError(secret))}, INTERCEPTORS, aio_server=True) as c:
        with pytest.raises(grpc.RpcError) as info:
            c.Execute(DummyRequest(input="x"))
    rpc_error: Any = info.value
    assert rpc_error.code() == grpc.StatusCode.INTERNAL
    assert secret not in rpc_error.details()
