"""The bridge's outermost middleware: drain refusal, metrics and one access line per request.

It wraps :func:`gateway.bridge.errors.error_middleware`, so it sees the final status of
every request, error bodies included. Probes and ``/metrics`` are measured but never
refused while the gateway drains.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway import logs
from gateway.admission import Admission
from gateway.bridge.errors import ERROR_REASON, error_response
from gateway.metrics import GatewayMetrics

__all__ = ["METRICS_PATH", "PROBE_PATHS", "metrics_handler", "observing_middleware"]

METRICS_PATH = "/metrics"
PROBE_PATHS = frozenset({"/healthz", "/readyz", METRICS_PATH})
"""Paths that keep answering while the gateway drains."""
_UNMATCHED = "unmatched"
_CLIENT_CLOSED = 499


def observing_middleware(
    admission: Admission, metrics: GatewayMetrics, *, access_log: bool
) -> Middleware:
    """The middleware for one gateway's admission and metrics."""
    log_enabled = access_log and not logs.access_logger.disabled

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        logs.begin_request(request.headers.get("X-Request-Id"))
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else _UNMATCHED
        counted = route not in PROBE_PATHS
        status = 500
        if counted and admission.draining:
            response: web.StreamResponse = error_response(
                503, "unavailable", "the gateway is shutting down; retry"
            )
            response.headers["Connection"] = "close"
            _finish(request, route, 503, started)
            return response
        if counted:
            admission.http += 1
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = _CLIENT_CLOSED
            raise
        finally:
            if counted:
                admission.http -= 1
                if admission.draining:
                    admission.release()
            _finish(request, route, status, started)

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

    return observe


def metrics_handler(metrics: GatewayMetrics) -> Handler:
    """``GET /metrics``: the gateway's metrics in the Prometheus text format."""

    async def serve_metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    return serve_metrics
