"""Service authentication: bearer keys per calling service, grants per method, and the
interceptor that enforces them on every ChatGateway call."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from grpc_interceptor import AsyncServerInterceptor

from gateway import logs
from gateway.config import ServiceGrant
from gateway.domain import GatewayError, PermissionDeniedError, UnauthenticatedError
from gateway.lru import BoundedCache
from gateway.rpc.errors import abort_with

GATEWAY_SERVICE = "tradetrust.chat.v1.ChatGateway"
GATEWAY_PREFIX = f"/{GATEWAY_SERVICE}/"

#: Services anyone may call: probes and tooling.
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

_BEARER = "bearer "


def split_method(method_name: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> (``pkg.Service``, ``Method``)."""
    _, service, method = method_name.split("/", 2) if method_name.count("/") == 2 else ("", "", "")
    return service, method


def is_open(method_name: str) -> bool:
    """Whether ``method_name`` belongs to a service anyone may call (health, reflection)."""
    return split_method(method_name)[0] in OPEN_SERVICES


def bearer_key(authorization: str | bytes | None) -> str | None:
    """The key of an ``authorization: Bearer <key>`` metadata value, or ``None``."""
    if not isinstance(authorization, str):
        return None
    if authorization[: len(_BEARER)].lower() != _BEARER:
        return None
    return authorization[len(_BEARER) :].strip() or None


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


class ServiceAuthorizer:
    """Decides whether a call may proceed: a known key (else UNAUTHENTICATED) whose service
    is granted the ChatGateway method called (else PERMISSION_DENIED).

    An ``authorization`` value that authenticated once is remembered with its grant, so the
    digest and comparisons run once per key, not once per call. Only successes are
    remembered (at most one entry per configured service key, plus spelling variants up to
    a small cap), grants never change while the process runs, and a dict lookup compares
    strings only when their randomised hashes match, so it tells a caller nothing about a
    key it does not already hold.
    """

    MAX_REMEMBERED = 64

    def __init__(self, grants: Iterable[ServiceGrant]) -> None:
        self._authenticator = ServiceKeyAuthenticator(grants)
        self._remembered: BoundedCache[str, ServiceGrant] = BoundedCache(self.MAX_REMEMBERED)

    def authorize(self, method_name: str, authorization: str | bytes | None) -> ServiceGrant:
        """The calling service's grant for ``/pkg.Service/Method``.

        Raises:
            UnauthenticatedError: no bearer key, or not a configured service's key.
            PermissionDeniedError: the service may not call the method.
        """
        grant = self._remembered.get(authorization) if isinstance(authorization, str) else None
        if grant is None:
            grant = self._authenticate(authorization)
        if method_name.startswith(GATEWAY_PREFIX):
            short_name = method_name[len(GATEWAY_PREFIX) :]
            if short_name in grant.methods:
                return grant
        else:
            short_name = split_method(method_name)[1]
        raise PermissionDeniedError(f"service {grant.name!r} may not call {short_name}")

    def _authenticate(self, authorization: str | bytes | None) -> ServiceGrant:
        key = bearer_key(authorization)
        if key is None:
            raise UnauthenticatedError("missing 'authorization: Bearer <service key>' metadata")
        grant = self._authenticator.authenticate(key)
        if grant is None:
            raise UnauthenticatedError("unknown service key")
        if isinstance(authorization, str):
            self._remembered.put(authorization, grant)
        return grant


class ServiceKeyInterceptor(AsyncServerInterceptor):
    """The service-key check of every ChatGateway call, on ``grpc_interceptor``.

    Health and reflection pass untouched. Any other call needs ``authorization: Bearer
    <service key>`` of a configured service granted the method; otherwise it is ended with
    UNAUTHENTICATED or PERMISSION_DENIED (mapped by :mod:`gateway.rpc.errors`, like every
    domain error). The calling service's name goes into the request's log scope.
    """

    def __init__(self, authorizer: ServiceAuthorizer) -> None:
        self._authorizer = authorizer

    async def intercept(
        self,
        method: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        method_name: str,
    ) -> Any:
        if not method_name.startswith(GATEWAY_PREFIX) and is_open(method_name):
            response = method(request_or_iterator, context)
            # Health/Watch and reflection stream their responses: hand the iterator on.
            return response if hasattr(response, "__aiter__") else await response
        authorization: str | bytes | None = None
        for name, value in context.invocation_metadata() or ():
            if name == "authorization":
                authorization = value
                break
        try:
            grant = self._authorizer.authorize(method_name, authorization)
        except GatewayError as refusal:
            await abort_with(context, refusal, method_name)
        scope = logs.current_request.get()
        if scope is not None:
            scope.service = grant.name
        return await method(request_or_iterator, context)
