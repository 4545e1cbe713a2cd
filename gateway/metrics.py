"""Prometheus metrics of one gateway, on its own :class:`CollectorRegistry`.

Each :class:`gateway.main.Gateway` owns one :class:`GatewayMetrics` (never the global
registry), so several gateways can run in one process (tests) without clashing. The hot
paths (:meth:`GatewayMetrics.observe_rpc`, :meth:`GatewayMetrics.observe_http`) look up
pre-bound label children in a dict: no label building per request.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "GatewayMetrics", "StreamOutcome"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Content type of :meth:`GatewayMetrics.render` (Prometheus text format 0.0.4)."""

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

StreamOutcome = str
"""``ok``, ``rate_limited``, ``timeout``, ``transient`` (5xx, 408, network), ``rejected``
(any other 4xx) or ``cancelled`` (the caller's deadline ran out first)."""


class GatewayMetrics:
    """The gateway's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.rpcs = Counter(
            "chat_gateway_rpcs",
            "ChatGateway RPCs handled, by full method name and gRPC status code.",
            ["method", "code"],
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "chat_gateway_rpc_duration_seconds",
            "ChatGateway RPC latency in the server, by method.",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rpcs_in_flight = Gauge(
            "chat_gateway_rpcs_in_flight", "ChatGateway RPCs being handled now.", registry=r
        )
        self.http_requests = Counter(
            "chat_gateway_http_requests",
            "HTTP bridge requests, by HTTP method, route and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "chat_gateway_http_request_duration_seconds",
            "HTTP bridge request latency, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.sync_backlog = Gauge(
            "chat_gateway_sync_backlog_orders",
            "Orders recorded but not yet synced to Stream (refreshed periodically).",
            registry=r,
        )
        self.sync_oldest_age = Gauge(
            "chat_gateway_sync_oldest_pending_age_seconds",
            "Age of the oldest order not yet synced to Stream; 0 when none is pending.",
            registry=r,
        )
        self.stream_calls = Counter(
            "chat_gateway_stream_calls",
            "Stream API calls, by call and outcome "
            "(ok, rate_limited, timeout, transient, rejected, cancelled).",
            ["call", "outcome"],
            registry=r,
        )
        self.stream_rate_limit_remaining = Gauge(
            "chat_gateway_stream_rate_limit_remaining",
            "X-RateLimit-Remaining of Stream's last answer that carried it.",
            registry=r,
        )
        self._rpc: dict[tuple[str, str], Counter] = {}
        self._rpc_seconds: dict[str, Histogram] = {}
        self._http: dict[tuple[str, str, int], Counter] = {}
        self._http_seconds: dict[str, Histogram] = {}
        self._stream: dict[tuple[str, str], Counter] = {}

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """Count one finished RPC and its latency."""
        counter = self._rpc.get((method, code))
        if counter is None:
            counter = self._rpc[(method, code)] = self.rpcs.labels(method, code)
        counter.inc()
        histogram = self._rpc_seconds.get(method)
        if histogram is None:
            histogram = self._rpc_seconds[method] = self.rpc_seconds.labels(method)
        histogram.observe(seconds)

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished HTTP request and its latency."""
        key = (method, route, status)
        counter = self._http.get(key)
        if counter is None:
            counter = self._http[key] = self.http_requests.labels(method, route, str(status))
        counter.inc()
        histogram = self._http_seconds.get(route)
        if histogram is None:
            histogram = self._http_seconds[route] = self.http_seconds.labels(route)
        histogram.observe(seconds)

    def observe_stream_call(self, call: str, outcome: StreamOutcome) -> None:
        """Count one Stream API call by its outcome."""
        counter = self._stream.get((call, outcome))
        if counter is None:
            counter = self._stream[(call, outcome)] = self.stream_calls.labels(call, outcome)
        counter.inc()

    def set_sync_backlog(self, count: int, oldest: datetime | None, now: datetime) -> None:
        """Publish the registry's pending count and the oldest pending order's age."""
        self.sync_backlog.set(count)
        self.sync_oldest_age.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)
