"""A real gRPC server with the gateway's interceptors whose every ChatGateway method raises
what the test chooses: the edge's error mapping, seen from a real client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from gateway.admission import Admission
from gateway.config import dev_services
from gateway.metrics import GatewayMetrics
from gateway.rpc.auth import GATEWAY_SERVICE, ServiceAuthorizer, ServiceKeyInterceptor
from gateway.rpc.interceptor import GatewayInterceptor
from gateway.rpc.telemetry import RpcTelemetry


@dataclass
class RaisingGateway:
    """``error`` is raised by every ChatGateway method; ``addr`` is where it listens."""

    addr: str
    error: BaseException = RuntimeError("unset")


def _handlers(gateway: RaisingGateway) -> grpc.GenericRpcHandler:
    async def raise_error(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        raise gateway.error

    service = pb.DESCRIPTOR.services_by_name["ChatGateway"]
    return grpc.method_handlers_generic_handler(
        GATEWAY_SERVICE,
        {
            method.name: grpc.unary_unary_rpc_method_handler(
                raise_error,
                request_deserializer=getattr(pb, method.input_type.name).FromString,
                response_serializer=getattr(pb, method.output_type.name).SerializeToString,
            )
            for method in service.methods
        },
    )


@pytest.fixture
async def raising_gateway() -> AsyncIterator[RaisingGateway]:
    """Every ChatGateway method raises ``raising_gateway.error``, behind the real
    interceptors (dev service keys)."""
    telemetry = RpcTelemetry(metrics=GatewayMetrics(), access_log=False)
    server = grpc.aio.server(
        interceptors=[
            GatewayInterceptor(Admission(max_concurrent_rpcs=10), telemetry),
            ServiceKeyInterceptor(ServiceAuthorizer(dev_services())),
        ]
    )
    gateway = RaisingGateway(addr="")
    server.add_generic_rpc_handlers((_handlers(gateway),))
    port = server.add_insecure_port("127.0.0.1:0")
    gateway.addr = f"127.0.0.1:{port}"
    await server.start()
    try:
        yield gateway
    finally:
        await server.stop(None)
