"""The admission, metrics and access-log interceptor of ChatGateway RPCs.

It sits inside :class:`gateway.rpc.errors.ErrorMappingInterceptor`, so what it raises
(:class:`OverloadedError`, :class:`UnavailableError`) maps through the one error table, and
it sees each RPC's outcome as the domain error (or abort) before the mapping. Health and
reflection pass straight through: no cap, no drain refusal, no metrics, no access lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_interceptor import AsyncServerInterceptor

from gateway import logs
from gateway.admission import Admission
from gateway.domain import GatewayError, OverloadedError, UnavailableError
from gateway.metrics import GatewayMetrics
from gateway.rpc.auth import GATEWAY_SERVICE, calling_service

_GATEWAY_PREFIX = f"/{GATEWAY_SERVICE}/"


class ObservingInterceptor(AsyncServerInterceptor):
    """Caps concurrent ChatGateway RPCs, refuses them while draining, measures and logs."""

    def __init__(self, *, admission: Admission, metrics: GatewayMetrics, access_log: bool) -> None:
        self._admission = admission
        self._metrics = metrics
        self._access_log = access_log and not logs.access_logger.disabled

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        method_name: str,
    ) -> Any:
        if not method_name.startswith(_GATEWAY_PREFIX):
            response = method(request_or_iterator, context)
            return response if hasattr(response, "__aiter__") else await response
        started = time.perf_counter()
        supplied = None
        for key, value in context.invocation_metadata() or ():
            if key == "x-request-id" and isinstance(value, str):
                supplied = value
                break
        logs.request_id.set(logs.new_request_id(supplied))
        admission = self._admission
        if admission.draining:
            self._finish(method_name, "UNAVAILABLE", started)
            raise UnavailableError("the gateway is shutting down; retry on another replica")
        if admission.rpcs >= admission.max_concurrent_rpcs:
            self._finish(method_name, "RESOURCE_EXHAUSTED", started)
            raise OverloadedError(
                f"more than {admission.max_concurrent_rpcs} RPCs in flight; retry shortly"
            )
        admission.rpcs += 1
        code = "INTERNAL"
        reason = ""
        try:
            response = await method(request_or_iterator, context)
            code = "OK"
            return response
        except GatewayError as exc:
            code = exc.code.name
            # INTERNAL details stay out of the access line (the error log has the traceback).
            reason = "" if exc.code.name == "INTERNAL" else exc.message
            raise
        except grpc.aio.AbortError:
            status = context.code()
            code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        finally:
            admission.rpcs -= 1
            if admission.draining:
                admission.release()
            self._finish(method_name, code, started, reason)

    def _finish(self, method_name: str, code: str, started: float, reason: str = "") -> None:
        seconds = time.perf_counter() - started
        self._metrics.observe_rpc(method_name, code, seconds)
        if self._access_log and logs.access_logger.isEnabledFor(logging.INFO):
            logs.access_logger.info(
                "rpc",
                extra={
                    "method": method_name,
                    "code": code,
                    "duration_ms": round(seconds * 1000, 3),
                    "service": calling_service.get() or "-",
                    **({"reason": reason} if reason else {}),
                },
            )
