"""Service authentication: bearer keys per calling service, grants per method."""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from grpc_interceptor import AsyncServerInterceptor

from gateway.config import ServiceGrant
from gateway.domain import PermissionDeniedError, UnauthenticatedError

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

    def authenticate(self, key: str) -> ServiceGrant | None:
        """The grant whose key is ``key``, or ``None``."""
        digest = hashlib.sha256(key.encode()).digest()
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


class ServiceAuthInterceptor(AsyncServerInterceptor):
    """Rejects ChatGateway calls without a known key (UNAUTHENTICATED) or without a grant
    for the method (PERMISSION_DENIED). Health and reflection stay open."""

    def __init__(self, grants: Iterable[ServiceGrant]) -> None:
        self._authenticator = ServiceKeyAuthenticator(grants)

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        method_name: str,
    ) -> Any:
        service, short_name = split_method(method_name)
        if service in OPEN_SERVICES:
            return await _call(method, request_or_iterator, context)
        key = bearer_key(context.invocation_metadata())
        if key is None:
            raise UnauthenticatedError("missing 'authorization: Bearer <service key>' metadata")
        grant = self._authenticator.authenticate(key)
        if grant is None:
            raise UnauthenticatedError("unknown service key")
        calling_service.set(grant.name)
        if service != GATEWAY_SERVICE or short_name not in grant.methods:
            raise PermissionDeniedError(f"service {grant.name!r} may not call {short_name}")
        return await _call(method, request_or_iterator, context)


async def _call(method: Callable[..., Any], request: Any, context: Any) -> Any:
    response = method(request, context)
    if hasattr(response, "__aiter__"):
        return response
    return await response
