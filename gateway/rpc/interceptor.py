"""The gRPC edge's guard: every ChatGateway call is admitted, measured, logged and has its
errors mapped to a status, in that order.

It is the outer of the server's two interceptors; the inner one,
:class:`gateway.rpc.auth.ServiceKeyInterceptor` (on ``grpc_interceptor``), checks the
service key. Health and reflection pass through the guard untouched.

A method's *guarded* handler is built once, when the method is first called, and reused:
an admitted call pays one wrapper and no per-call allocation, and later calls of the method
skip the inner chain's lookup. That lookup would hand back a fresh but equivalent handler
(``grpc_interceptor`` wraps per lookup, and its wrapper depends only on the method name;
the servicers never change while the server runs), so the first one is kept.

The guarded handler admits the call (:class:`~gateway.admission.Admission`), runs it, maps
a :class:`~gateway.domain.GatewayError` once through :mod:`gateway.rpc.errors` (anything
else becomes INTERNAL without detail) and records the outcome
(:class:`~gateway.rpc.telemetry.RpcTelemetry`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from gateway import logs
from gateway.admission import Admission
from gateway.domain import ErrorCode, GatewayError, InvalidArgumentError
from gateway.rpc.auth import GATEWAY_PREFIX, is_open
from gateway.rpc.errors import abort_internal, abort_with, grpc_code
from gateway.rpc.telemetry import RpcTelemetry

_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Behavior: TypeAlias = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Any]]


class GatewayInterceptor(grpc.aio.ServerInterceptor):
    """Admission, metrics, access log and error mapping for every RPC except health and
    reflection."""

    def __init__(self, admission: Admission, telemetry: RpcTelemetry) -> None:
        self._admission = admission
        self._telemetry = telemetry
        self._guarded: dict[str, _Handler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        method = handler_call_details.method
        guarded = self._guarded.get(method)
        if guarded is None:
            handler = await continuation(handler_call_details)
            if handler is None or (not method.startswith(GATEWAY_PREFIX) and is_open(method)):
                return handler  # unknown method (UNIMPLEMENTED), or a probe / tooling call
            guarded = self._guarded[method] = self._guard(method, handler)
        request_id: str | None = None
        for name, value in handler_call_details.invocation_metadata or ():
            if name == "x-request-id" and isinstance(value, str):
                request_id = value
                break
        # The lookup runs in the RPC's own task: the scope reaches the handler and the logs.
        logs.begin_request(request_id)
        return guarded

    def _guard(self, method_name: str, handler: _Handler) -> _Handler:
        """``handler`` admitted, measured and error-mapped."""
        # The servicer's methods are coroutine functions (grpc's stubs type them as sync).
        behavior: _Behavior | None = handler.unary_unary  # type: ignore[assignment]
        if behavior is None or handler.request_streaming or handler.response_streaming:
            raise TypeError(f"{method_name}: only unary-unary methods can be guarded")
        admission = self._admission
        record = self._telemetry.recorder(method_name)
        parse = handler.request_deserializer

        def deserialize(data: bytes) -> Any:
            # A message grpc cannot decode (bad UTF-8 in a string field, truncated bytes)
            # is the caller's error: INVALID_ARGUMENT, not grpc's ERROR traceback + UNKNOWN.
            try:
                return parse(data) if parse is not None else data
            except Exception as exc:
                return _Undecodable(type(exc).__name__)

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code = "INTERNAL"
            reason = ""
            admitted = False
            try:
                admission.admit_rpc()
                admitted = True
                if type(request) is _Undecodable:
                    raise InvalidArgumentError(
                        "request", f"is not a valid protobuf message ({request.error})"
                    )
                response = await behavior(request, context)
                code = "OK"
                return response
            except GatewayError as error:
                code = grpc_code(error.code).name
                # INTERNAL details stay out of the access line (the error log has them).
                reason = "" if error.code is ErrorCode.INTERNAL else error.message
                await abort_with(context, error, method_name)
            except grpc.aio.AbortError:
                # Ended by an inner interceptor (the service-key check) or the servicer.
                status = context.code()
                code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
                reason = context.details() or ""
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception:
                await abort_internal(context, method_name)
            finally:
                if admitted:
                    admission.release_rpc()
                record(code, started, reason)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )


class _Undecodable:
    """What the guard's deserializer hands on for a request it could not decode."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error
