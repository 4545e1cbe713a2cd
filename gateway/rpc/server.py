"""Assembles the grpc.aio server: ChatGateway, health, reflection, interceptors."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.admission import Admission
from gateway.config import EdgeSettings
from gateway.rpc.auth import ServiceAuthorizer, ServiceKeyInterceptor
from gateway.rpc.interceptor import GatewayInterceptor
from gateway.rpc.servicer import ChatGatewayServicer
from gateway.rpc.telemetry import RpcTelemetry
from gateway.service import ChatService

GATEWAY_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ChatGateway"].full_name
# GatewayInterceptor guards unary-unary methods only; a streaming one would need its own guard.
assert not [
    m.name
    for m in pb.DESCRIPTOR.services_by_name["ChatGateway"].methods
    if m.client_streaming or m.server_streaming
], "ChatGateway has a streaming method: extend GatewayInterceptor._guard first"


class GrpcEdge:
    """The gRPC server of one gateway: created, bound and started in one step.

    grpc keeps the poller of a server that was created but never started, and the
    listening socket of one that was bound but never started, until the process exits. So
    nothing is created before :meth:`start`, and a start-up that fails earlier leaks
    nothing.
    """

    def __init__(
        self,
        service: ChatService,
        settings: EdgeSettings,
        *,
        telemetry: RpcTelemetry,
        admission: Admission,
    ) -> None:
        self._service = service
        self._settings = settings
        self._interceptors = (
            GatewayInterceptor(admission, telemetry),
            ServiceKeyInterceptor(ServiceAuthorizer(settings.services)),
        )
        self._credentials = server_credentials(settings)  # fails early on unreadable files
        self._server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self.port = 0
        """The bound port, once started (the configured one, or the one picked for 0)."""

    async def start(self) -> None:
        """Create the server, bind its port and start serving; health reports SERVING.

        Every ChatGateway call passes :class:`GatewayInterceptor` (admission, metrics,
        access log, error mapping) and then :class:`ServiceKeyInterceptor` (service keys
        and grants); with ``CHAT_GATEWAY_TLS_*`` files the port speaks TLS.

        Raises:
            OSError: the address cannot be bound.
        """
        settings = self._settings
        server = grpc.aio.server(
            interceptors=self._interceptors,
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                # Off unless several workers share the port: otherwise a second gateway on
                # the same port would start silently instead of failing.
                ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
                # Bounds on what one connection may hold: concurrent streams (a client that
                # opens and resets streams in a loop cannot crowd out the others), idle time
                # and age (clients reconnect, and spread over replicas).
                ("grpc.max_concurrent_streams", settings.grpc_max_concurrent_streams),
                ("grpc.max_connection_idle_ms", int(settings.grpc_max_connection_idle_s * 1000)),
                ("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", int(settings.shutdown_grace_s * 1000)),
            ],
        )
        pb_grpc.add_ChatGatewayServicer_to_server(ChatGatewayServicer(self._service), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (GATEWAY_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        bind_error: RuntimeError | None = None
        try:
            if self._credentials is not None:
                port = server.add_secure_port(settings.grpc_addr, self._credentials)
            else:
                port = server.add_insecure_port(settings.grpc_addr)
        except RuntimeError as exc:  # grpcio raises "Failed to bind" (older ones return 0)
            port, bind_error = 0, exc
        await server.start()  # even when binding failed: a started server frees its poller
        if port == 0:
            await server.stop(0)
            raise OSError(f"cannot listen on {settings.grpc_addr} for gRPC") from bind_error
        self._server, self.port = server, port
        try:
            await self.set_serving(True)
        except BaseException:
            await server.stop(0)
            raise

    async def set_serving(self, serving: bool) -> None:
        """Flip the overall and ChatGateway health status."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", GATEWAY_SERVICE_NAME):
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, refuse new RPCs, let in-flight ones finish within grace."""
        await self.set_serving(False)
        if self._server is not None:
            await self._server.stop(grace_s)


def server_credentials(settings: EdgeSettings) -> grpc.ServerCredentials | None:
    """TLS credentials from ``CHAT_GATEWAY_TLS_*`` files; client certificates are required
    (mTLS) when a client CA is configured. ``None``: plaintext."""
    if not settings.tls_cert_file or not settings.tls_key_file:
        return None
    with open(settings.tls_key_file, "rb") as fh:
        key = fh.read()
    with open(settings.tls_cert_file, "rb") as fh:
        chain = fh.read()
    client_ca = None
    if settings.tls_client_ca_file:
        with open(settings.tls_client_ca_file, "rb") as fh:
            client_ca = fh.read()
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
