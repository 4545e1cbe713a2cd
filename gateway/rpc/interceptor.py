"""The gRPC edge's one interceptor: every ChatGateway call is authenticated, admitted,
measured, logged and has its errors mapped to a status, in that order.

Health and reflection pass through untouched. For everything else the decision is made
while gRPC looks the method up, from the call's metadata:

- a known key granted the method gets the method's *guarded* handler, built once per
  method and reused, so an authorised call pays one wrapper and no per-call allocation;
- a refused call gets a guarded handler that raises the refusal, so it is measured,
  logged and mapped (UNAUTHENTICATED / PERMISSION_DENIED) like any other failure.

The guarded handler (:meth:`GatewayInterceptor._guard`) admits the call
(:class:`~gateway.rpc.observe.RpcObserver`), runs it, maps a
:class:`~gateway.domain.GatewayError` once through :mod:`gateway.rpc.errors` (anything
else becomes INTERNAL without detail) and records the outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from gateway import logs
from gateway.domain import ErrorCode, GatewayError
from gateway.rpc.auth import GATEWAY_PREFIX, ServiceAuthorizer, is_open
from gateway.rpc.errors import abort_internal, abort_with
from gateway.rpc.observe import RpcObserver

_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Behavior: TypeAlias = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Any]]


class GatewayInterceptor(grpc.aio.ServerInterceptor):
    """Auth (per-service keys, per-method grants), admission, metrics, access log and
    error mapping for every RPC except health and reflection."""

    def __init__(self, authorizer: ServiceAuthorizer, observer: RpcObserver) -> None:
        self._authorizer = authorizer
        self._observer = observer
        # method -> (the servicer's handler, its guarded handler)
        self._guarded: dict[str, tuple[_Handler, _Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or (not method.startswith(GATEWAY_PREFIX) and is_open(method)):
            return handler  # unknown method (UNIMPLEMENTED), or a probe / tooling call
        authorization: str | bytes | None = None
        request_id: str | None = None
        for name, value in handler_call_details.invocation_metadata or ():
            if name == "authorization":
                if authorization is None:
                    authorization = value
            elif name == "x-request-id" and isinstance(value, str):
                request_id = value
        # The lookup runs in the RPC's own task: the scope reaches the handler and the logs.
        scope = logs.begin_request(request_id)
        try:
            grant = self._authorizer.authorize(method, authorization)
        except GatewayError as refusal:
            return self._guard(method, handler, _raising(refusal))
        scope.service = grant.name
        cached = self._guarded.get(method)
        if cached is None or cached[0] is not handler:
            # The servicer's methods are coroutine functions (grpc's stubs type them as sync).
            behavior: _Behavior | None = handler.unary_unary  # type: ignore[assignment]
            cached = (handler, self._guard(method, handler, behavior))
            self._guarded[method] = cached
        return cached[1]

    def _guard(self, method_name: str, handler: _Handler, behavior: _Behavior | None) -> _Handler:
        """``handler``'s shape with ``behavior`` admitted, measured and error-mapped."""
        if behavior is None or handler.request_streaming or handler.response_streaming:
            raise TypeError(f"{method_name}: only unary-unary methods can be guarded")
        observer = self._observer
        record = observer.recorder(method_name)

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code = "INTERNAL"
            reason = ""
            admitted = False
            try:
                observer.admit()
                admitted = True
                response = await behavior(request, context)
                code = "OK"
                return response
            except GatewayError as error:
                code = error.code.name
                # INTERNAL details stay out of the access line (the error log has them).
                reason = "" if error.code is ErrorCode.INTERNAL else error.message
                await abort_with(context, error, method_name)
            except grpc.aio.AbortError:
                status = context.code()
                code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception:
                await abort_internal(context, method_name)
            finally:
                if admitted:
                    observer.release()
                record(code, started, reason)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _raising(error: GatewayError) -> _Behavior:
    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        raise error

    return refuse
