"""The bridge's one middleware, around every request: drain refusal, error mapping, CORS
and security headers, metrics and one access line.

One layer instead of a chain of middlewares and response signals: each of those costs a
few microseconds on every request, and the token route is on every chat page load.
Handlers return their response (they never prepare it themselves), so the headers can be
added here to every response, error bodies included. Probes and ``/metrics`` are measured
but never refused while the gateway drains.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway import logs
from gateway.admission import Admission
from gateway.bridge.cors import CorsPolicy
from gateway.bridge.errors import ERROR_REASON, error_response, response_for
from gateway.bridge.observe import PROBE_PATHS
from gateway.metrics import GatewayMetrics

__all__ = ["edge_middleware"]

_UNMATCHED = "unmatched"
_CLIENT_CLOSED = 499


def edge_middleware(
    *, admission: Admission, metrics: GatewayMetrics, cors: CorsPolicy, access_log: bool
) -> Middleware:
    """The middleware for one gateway's admission, metrics and CORS policy."""
    log_enabled = access_log and not logs.access_logger.disabled

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        logs.begin_request(request.headers.get("X-Request-Id"))
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else _UNMATCHED
        counted = route not in PROBE_PATHS
        response: web.StreamResponse
        if counted and admission.draining:
            response = error_response(503, "unavailable", "the gateway is shutting down; retry")
            response.headers["Connection"] = "close"
        else:
            if counted:
                admission.http += 1
            try:
                response = await handler(request)
            except asyncio.CancelledError:
                _finish(request, route, _CLIENT_CLOSED, started)
                raise
            except Exception as exc:  # every failure becomes a JSON error (or re-raises)
                try:
                    response = response_for(request, exc)
                except web.HTTPException as passed_on:
                    _finish(request, route, passed_on.status, started)
                    raise
            finally:
                if counted:
                    admission.http -= 1
                    if admission.draining:
                        admission.release()
        if not response.prepared:
            cors.decorate(request, response)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
        _finish(request, route, response.status, started)
        return response

    def _finish(request: web.Request, route: str, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        metrics.observe_http(request.method, route, status, seconds)
        if log_enabled and logs.access_logger.isEnabledFor(logging.INFO):
            logs.access_logger.info(
                "http",
                extra={
                    "method": request.method,
                    "path": request.path[:256],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    **({"reason": reason} if (reason := request.get(ERROR_REASON)) else {}),
                },
            )

    return edge
