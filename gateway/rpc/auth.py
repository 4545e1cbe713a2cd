"""Service authentication: bearer keys per calling service, grants per method."""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias

import grpc

from gateway.config import ServiceGrant
from gateway.domain import GatewayError, PermissionDeniedError, UnauthenticatedError

GATEWAY_SERVICE = "tradetrust.chat.v1.ChatGateway"

#: Services anyone may call: probes and tooling.
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

#: The calling service's name for the current RPC (for logs), "" when not authenticated.
calling_service: contextvars.ContextVar[str] = contextvars.ContextVar("calling_service", default="")


def split_method(method_name: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> (``pkg.Service``, ``Method``)."""
    _, service, method = method_name.split("/", 2) if method_name.count("/") == 2 else ("", "", "")
    return service, method


class ServiceKeyAuthenticator:
    """Finds the service a bearer key belongs to, comparing SHA-256 digests in constant
    time against every configured service (so timing tells nothing about which matched)."""

    def __init__(self, grants: Iterable[ServiceGrant]) -> None:
        self._grants = tuple(grants)
        # Copying an initialised context skips OpenSSL's per-call digest fetch, which costs
        # several microseconds on every RPC inside a busy server.
        self._sha256 = hashlib.sha256()

    def authenticate(self, key: str) -> ServiceGrant | None:
        """The grant whose key is ``key``, or ``None``."""
        hasher = self._sha256.copy()
        hasher.update(key.encode())
        digest = hasher.digest()
        found: ServiceGrant | None = None
        for grant in self._grants:
            if hmac.compare_digest(digest, grant.key_sha256):
                found = grant
        return found


def bearer_key(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The key of an ``authorization: Bearer <key>`` entry, or ``None``."""
    for name, value in metadata or ():
        if name == "authorization" and isinstance(value, str):
            scheme, _, key = value.partition(" ")
            if scheme.lower() == "bearer" and key.strip():
                return key.strip()
    return None


_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class ServiceAuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects ChatGateway calls without a known key (UNAUTHENTICATED) or without a grant
    for the method (PERMISSION_DENIED). Health and reflection stay open.

    It decides while gRPC looks the method up, from the call's metadata, and hands back the
    method's own handler untouched when the call may proceed: authorised calls pay no extra
    wrapper. A refused call gets a handler that raises the domain error, which the outer
    interceptors record and map to its status like any other.
    """

    def __init__(self, grants: Iterable[ServiceGrant]) -> None:
        self._authenticator = ServiceKeyAuthenticator(grants)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # unknown method: UNIMPLEMENTED
        service, short_name = split_method(handler_call_details.method)
        if service in OPEN_SERVICES:
            return handler
        try:
            self._authorize(service, short_name, handler_call_details.invocation_metadata)
        except GatewayError as error:
            return _refusing(handler, error)
        return handler

    def _authorize(
        self, service: str, short_name: str, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> None:
        key = bearer_key(metadata)
        if key is None:
            raise UnauthenticatedError("missing 'authorization: Bearer <service key>' metadata")
        grant = self._authenticator.authenticate(key)
        if grant is None:
            raise UnauthenticatedError("unknown service key")
        calling_service.set(grant.name)
        if service != GATEWAY_SERVICE or short_name not in grant.methods:
            raise PermissionDeniedError(f"service {grant.name!r} may not call {short_name}")


def _refusing(handler: _Handler, error: GatewayError) -> _Handler:
    """A handler of the same shape as ``handler`` that raises ``error`` when called."""

    async def refuse(request: Any, context: Any) -> Any:
        raise error

    codec = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **codec)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **codec)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **codec)
    return grpc.unary_unary_rpc_method_handler(refuse, **codec)
