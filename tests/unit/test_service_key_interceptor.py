"""The service-key interceptor on grpc_interceptor's own test bench (``dummy_client``):
a real aio server with only this interceptor in front of grpc_interceptor's DummyService.

The DummyService is not ChatGateway, so no key may call it: a missing or unknown key is
UNAUTHENTICATED, a known service is PERMISSION_DENIED, and the handler never runs. The
granted path is exercised end to end in the integration tests.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_interceptor.testing import DummyRequest, dummy_client
from grpc_status import rpc_status

from gateway.config import DEV_ORDER_SERVICE_KEY, dev_services
from gateway.rpc.auth import ServiceAuthorizer, ServiceKeyInterceptor
from gateway.rpc.errors import ERROR_DOMAIN


@pytest.fixture
def handled() -> list[str]:
    return []


def _call(handled: list[str], metadata: tuple[tuple[str, str], ...]) -> grpc.RpcError:
    def record(value: str, context: Any) -> str:
        handled.append(value)
        return value

    # dummy_client's annotation names the sync base class; it takes async ones too.
    interceptor: Any = ServiceKeyInterceptor(ServiceAuthorizer(dev_services()))
    with dummy_client(
        special_cases={"hello": record}, interceptors=[interceptor], aio_server=True
    ) as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.Execute(DummyRequest(input="hello"), metadata=metadata, timeout=10)
    return caught.value


def _reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.domain == ERROR_DOMAIN
    return str(info.reason)


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer not-a-key"),), (("authorization", "Basic abc"),)],
    ids=["no key", "unknown key", "not bearer"],
)
def test_callers_without_a_known_key_are_unauthenticated(
    handled: list[str], metadata: tuple[tuple[str, str], ...]
) -> None:
    error = _call(handled, metadata)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert _reason(error) == "UNAUTHENTICATED"
    assert handled == []


def test_a_known_service_is_denied_what_it_is_not_granted(handled: list[str]) -> None:
    error = _call(handled, (("authorization", f"Bearer {DEV_ORDER_SERVICE_KEY}"),))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "order-service" in (error.details() or "")
    assert _reason(error) == "PERMISSION_DENIED"
    assert handled == []
