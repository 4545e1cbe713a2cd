"""The bridge's probe paths and its ``/metrics`` endpoint."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.metrics import GatewayMetrics

__all__ = ["METRICS_PATH", "PROBE_PATHS", "MetricsEdge", "metrics_handler"]

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


class MetricsEdge:
    """``/metrics`` on a port of its own (``CHAT_GATEWAY_METRICS_ADDR``), away from the
    browser-facing bridge: for Prometheus on an internal network only."""

    def __init__(self, metrics: GatewayMetrics, addr: str) -> None:
        app = web.Application()
        app.router.add_get(METRICS_PATH, metrics_handler(metrics))
        self._app = app
        host, _, port = addr.rpartition(":")
        self._host, self._port = host.strip("[]"), int(port)
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the metrics listener is not started")
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        """Bind and serve."""
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
