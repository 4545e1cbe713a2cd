"""The bridge's one wrapper around every route handler: drain refusal, error mapping, CORS
and security headers, metrics and one access line.

It wraps each handler when the routes are registered (:meth:`RouteGuard.route`),
instead of running as aiohttp middleware: with no middleware aiohttp calls the handler
directly, skipping its per-request middleware chain, and the route's metric label is
known up front. Unknown paths and methods have catch-all routes wrapped the same way, so
every response, errors included, passes through here. Handlers return their response
(they never prepare it themselves), so the headers can be added to it. Probes and
``/metrics`` are measured but never refused while the gateway drains.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest

from gateway import logs
from gateway.admission import Admission
from gateway.bridge.connections import ConnectionGuard
from gateway.bridge.cors import CorsPolicy
from gateway.bridge.errors import ERROR_REASON, error_response, response_for
from gateway.bridge.probes import PROBE_PATHS
from gateway.metrics import GatewayMetrics

__all__ = ["MALFORMED", "UNMATCHED", "RouteGuard"]

UNMATCHED = "unmatched"
"""The route label of requests for paths the bridge does not serve."""
MALFORMED = "malformed"
"""The route label of requests aiohttp could not parse (answered before routing)."""
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
"""HTTP methods kept as metric labels; any other is counted as :data:`OTHER_METHOD`."""
OTHER_METHOD = "OTHER"
_CLIENT_CLOSED = 499


class RouteGuard:
    """Registers routes with the wrapper for one gateway's admission, metrics and CORS."""

    def __init__(
        self,
        *,
        admission: Admission,
        metrics: GatewayMetrics,
        cors: CorsPolicy,
        access_log: bool,
        connections: ConnectionGuard | None = None,
    ) -> None:
        self._connections = connections
        self._admission = admission
        self._metrics = metrics
        self._cors = cors
        self._log_enabled = access_log and not logs.access_logger.disabled

    def route(
        self, app: web.Application, path: str, handlers: dict[str, Handler], *, head: bool = False
    ) -> None:
        """Serve ``path`` with ``handlers`` (HTTP method -> handler; ``head``: HEAD as GET);
        any other method gets 405 with ``Allow``."""
        resource = app.router.add_resource(path)
        methods = dict(handlers)
        if head and "GET" in methods:
            methods["HEAD"] = methods["GET"]
        for method, handler in methods.items():
            resource.add_route(method, self.wrap(handler, path))
        resource.add_route("*", self.wrap(_method_not_allowed(methods), path))

    def catch_all(self, app: web.Application) -> None:
        """Answer every path not registered before with the JSON 404 (register it last)."""
        app.router.add_route("*", "/{path:.*}", self.wrap(_not_found, UNMATCHED))

    def wrap(self, handler: Handler, route: str) -> Handler:
        """``handler`` behind the edge, measured under ``route``."""
        admission = self._admission
        cors = self._cors
        finish = self._finish
        counted = route not in PROBE_PATHS
        connections = self._connections

        async def edge(request: web.Request) -> web.StreamResponse:
            connection = connections.of(request.transport) if connections is not None else None
            if connection is None:
                return await guarded(request)
            connection.request_started()
            try:
                return await guarded(request)
            finally:
                connection.request_finished()

        async def guarded(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            logs.begin_request(request.headers.get("X-Request-Id"))
            response: web.StreamResponse
            if counted and admission.draining:
                response = error_response(503, "unavailable", "the gateway is shutting down; retry")
                response.headers["Connection"] = "close"
            else:
                if counted:
                    admission.admit_http()
                try:
                    response = await handler(request)
                except asyncio.CancelledError:
                    finish(request, route, _CLIENT_CLOSED, started)
                    raise
                except Exception as exc:  # every failure becomes a JSON error (or re-raises)
                    try:
                        response = response_for(request, exc)
                    except web.HTTPException as passed_on:
                        finish(request, route, passed_on.status, started)
                        raise
                finally:
                    if counted:
                        admission.release_http()
            if not response.prepared:
                cors.decorate(request, response)
                response.headers.setdefault("X-Content-Type-Options", "nosniff")
            finish(request, route, response.status, started)
            return response

        return edge

    def malformed(self, request: BaseRequest, status: int, reason: str) -> None:
        """Count and log a request aiohttp refused before any route ran."""
        logs.begin_request(None)
        request[ERROR_REASON] = reason
        self._finish(request, MALFORMED, status, time.perf_counter())

    def recorder(
        self, method: str, raw_path: str, route: str, status: int
    ) -> Callable[[float, str], None]:
        """``record(started, request_id)`` for requests that all have this method, path,
        route and status (the token fast lane): what :meth:`_finish` does, with the access
        line's fixed part made once (:class:`gateway.logs.AccessLine`)."""
        method = _method_label(method)
        metrics = self._metrics
        line = logs.AccessLine(
            "http", method=method, path=_printable(raw_path[:256]), status=status
        )
        log_enabled = self._log_enabled

        def record(started: float, request_id: str) -> None:
            seconds = time.perf_counter() - started
            metrics.observe_http(method, route, status, seconds)
            if log_enabled and logs.access_logger.isEnabledFor(logging.INFO):
                line.write(round(seconds * 1000, 3), logs.new_request_id(request_id or None))

        return record

    def _finish(self, request: BaseRequest, route: str, status: int, started: float) -> None:
        """Measure and log one answered request (``started``: its ``perf_counter``)."""
        seconds = time.perf_counter() - started
        method = _method_label(request.method)
        self._metrics.observe_http(method, route, status, seconds)
        if self._log_enabled and logs.access_logger.isEnabledFor(logging.INFO):
            fields: dict[str, object] = {
                "method": method,
                "path": _printable(request.raw_path[:256]),
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            }
            if reason := request.get(ERROR_REASON):
                fields["reason"] = reason
            logs.access("http", fields)


def _method_label(method: str) -> str:
    """The metric and log label of an HTTP method (unknown ones folded into one)."""
    return method if method in KNOWN_METHODS else OTHER_METHOD


def _printable(text: str) -> str:
    """``text`` with control characters escaped (a path can carry ``%0a`` decoded)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _method_not_allowed(methods: Iterable[str]) -> Handler:
    allowed = sorted(set(methods))

    async def refuse(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMethodNotAllowed(request.method, allowed)

    return refuse


async def _not_found(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()
