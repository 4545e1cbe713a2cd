"""Prometheus metrics of one gateway, on its own :class:`CollectorRegistry`.

Each :class:`gateway.app.Gateway` owns one :class:`GatewayMetrics` (never the global
registry), so several gateways can run in one process (tests) without clashing. Request
counts and latencies (:meth:`GatewayMetrics.observe_rpc`, :meth:`GatewayMetrics.observe_http`)
are on the hot path of every call, so they are plain integers in dicts, updated without locks
(every request finishes on the one event-loop thread) and turned into Prometheus samples only
when scraped (:class:`RequestMetrics`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "GatewayMetrics", "LatencyCell", "StreamOutcome"]

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


class LatencyCell:
    """One histogram label set's latency buckets and sum, and the request counts of every
    counter label set under it. Hot-path callers may keep a cell and call :meth:`observe`."""

    __slots__ = ("buckets", "counts", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(_LATENCY_BUCKETS) + 1)
        """Count in each bucket (non-cumulative), the last one +Inf."""
        self.total = 0.0
        self.counts: dict[tuple[str, ...], int] = {}

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        """Count one request under counter ``labels`` and its latency."""
        counts = self.counts
        counts[labels] = counts.get(labels, 0) + 1
        self.buckets[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds


class RequestMetrics(Collector):
    """A counter and a latency histogram of requests, kept as plain numbers.

    ``observe`` is two dict lookups, a bisect and three additions; ``collect`` builds the
    cumulative Prometheus families at scrape time. Only the event-loop thread writes; a
    scrape from another thread could read a count one request behind, never a torn one.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        histogram: str,
        histogram_doc: str,
        labels: tuple[str, ...],
        histogram_labels: tuple[str, ...],
    ) -> None:
        self._name, self._doc = name, documentation
        self._histogram, self._histogram_doc = histogram, histogram_doc
        self._labels, self._histogram_labels = labels, histogram_labels
        self._cells: dict[tuple[str, ...], LatencyCell] = {}

    def cell(self, histogram_labels: tuple[str, ...]) -> LatencyCell:
        """The cell of ``histogram_labels`` (created on first use)."""
        cell = self._cells.get(histogram_labels)
        if cell is None:
            cell = self._cells[histogram_labels] = LatencyCell()
        return cell

    def observe(
        self, labels: tuple[str, ...], histogram_labels: tuple[str, ...], seconds: float
    ) -> None:
        """Count one request under ``labels`` and its latency under ``histogram_labels``."""
        self.cell(histogram_labels).observe(labels, seconds)

    def collect(self) -> Iterator[Metric]:
        cells = list(self._cells.items())
        counter = CounterMetricFamily(self._name, self._doc, labels=self._labels)
        for _, cell in cells:
            for labels, value in list(cell.counts.items()):
                counter.add_metric(list(labels), value)
        yield counter
        histogram = HistogramMetricFamily(
            self._histogram, self._histogram_doc, labels=self._histogram_labels
        )
        for labels, cell in cells:
            cumulative, running = [], 0
            for bound, count in zip((*_LATENCY_BUCKETS, float("inf")), cell.buckets, strict=True):
                running += count
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
            histogram.add_metric(list(labels), cumulative, cell.total)
        yield histogram


class GatewayMetrics:
    """The gateway's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.rpcs = RequestMetrics(
            "chat_gateway_rpcs",
            "ChatGateway RPCs handled, by full method name and gRPC status code.",
            "chat_gateway_rpc_duration_seconds",
            "ChatGateway RPC latency in the server, by method.",
            ("method", "code"),
            ("method",),
        )
        r.register(self.rpcs)
        self.rpcs_in_flight = Gauge(
            "chat_gateway_rpcs_in_flight", "ChatGateway RPCs being handled now.", registry=r
        )
        self.http_requests = RequestMetrics(
            "chat_gateway_http_requests",
            "HTTP bridge requests, by HTTP method, route and status.",
            "chat_gateway_http_request_duration_seconds",
            "HTTP bridge request latency, by route.",
            ("method", "route", "status"),
            ("route",),
        )
        r.register(self.http_requests)
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
        self.stream_calls = RequestMetrics(
            "chat_gateway_stream_calls",
            "Stream API calls, by call and outcome "
            "(ok, rate_limited, timeout, transient, rejected, cancelled).",
            "chat_gateway_stream_call_duration_seconds",
            "Stream API call latency as the gateway sees it (sent to answer parsed), by call.",
            ("call", "outcome"),
            ("call",),
        )
        r.register(self.stream_calls)
        self.stream_rate_limit_remaining = Gauge(
            "chat_gateway_stream_rate_limit_remaining",
            "X-RateLimit-Remaining of Stream's last answer that carried it.",
            registry=r,
        )
        self.http_connections_open = Gauge(
            "chat_gateway_http_connections_open",
            "HTTP bridge connections open now.",
            registry=r,
        )
        self.http_connections_closed = Counter(
            "chat_gateway_http_connections_closed_by_guard",
            "HTTP bridge connections the gateway closed on its own, by reason "
            "(header_timeout, evicted: idle at the connection cap, refused: all busy at the cap).",
            ["reason"],
            registry=r,
        )

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """Count one finished RPC and its latency."""
        self.rpcs.observe((method, code), (method,), seconds)

    def rpc_cell(self, method: str) -> LatencyCell:
        """The cell of ``method``: ``observe((method, code), seconds)`` counts one RPC."""
        return self.rpcs.cell((method,))

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one finished HTTP request and its latency."""
        self.http_requests.observe((method, route, str(status)), (route,), seconds)

    def observe_stream_call(self, call: str, outcome: StreamOutcome, seconds: float) -> None:
        """Count one Stream API call by its outcome, and its latency."""
        self.stream_calls.observe((call, outcome), (call,), seconds)

    def set_sync_backlog(self, count: int, oldest: datetime | None, now: datetime) -> None:
        """Publish the registry's pending count and the oldest pending order's age."""
        self.sync_backlog.set(count)
        self.sync_oldest_age.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)
