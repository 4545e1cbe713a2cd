"""The bridge's probe paths and its ``/metrics`` endpoint."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.metrics import GatewayMetrics

__all__ = ["METRICS_PATH", "PROBE_PATHS", "metrics_handler"]

METRICS_PATH = "/metrics"
PROBE_PATHS = frozenset({"/healthz", "/readyz", METRICS_PATH})
"""Paths that keep answering while the gateway drains."""


def metrics_handler(metrics: GatewayMetrics) -> Handler:
    """``GET /metrics``: the gateway's metrics in the Prometheus text format."""

    async def serve_metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=metrics.render(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    return serve_metrics
