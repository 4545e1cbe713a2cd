"""The bridge's aiohttp application and its listener (:class:`BridgeEdge`)."""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from functools import partial
from pathlib import Path

from aiohttp import web

from gateway.admission import Admission
from gateway.bridge import handlers
from gateway.bridge.connections import ConnectionGuard, GuardedSite
from gateway.bridge.cors import CorsPolicy
from gateway.bridge.devpages import ASSET_PATH, DEFAULT_DIST, LOGIN_PATH, PAGE_PATH, DevPages
from gateway.bridge.fastlane import TokenFastLane
from gateway.bridge.guard import RouteGuard
from gateway.bridge.handlers import CONTEXT, BridgeContext, Readiness
from gateway.bridge.openapi import openapi_document
from gateway.bridge.probes import METRICS_PATH, metrics_handler
from gateway.bridge.protocol import BridgeRequestHandler
from gateway.bridge.ratelimit import TokenBucketLimiter
from gateway.bridge.session import SessionVerifier
from gateway.config import BridgeSettings, EdgeSettings, Settings, TokenSettings
from gateway.metrics import GatewayMetrics
from gateway.registry import OrderRegistry
from gateway.service import ChatService

logger = logging.getLogger(__name__)

TOKEN_PATH = "/api/chat/stream/token"
CHANNEL_PATH = "/api/chat/stream/channel"
OPENAPI_PATH = "/api/chat/stream/openapi.json"
ROUTE_GUARD = web.AppKey("route_guard", RouteGuard)
FAST_LANE = web.AppKey("fast_lane", TokenFastLane)


def build_bridge_app(
    *,
    service: ChatService,
    registry: OrderRegistry,
    settings: BridgeSettings,
    tokens: TokenSettings,
    metrics: GatewayMetrics,
    admission: Admission,
    access_log: bool = True,
    verifier: SessionVerifier | None = None,
    limiter: TokenBucketLimiter | None = None,
    readiness: Readiness | None = None,
    connections: ConnectionGuard | None = None,
    body_timeout_s: float = 10.0,
    serve_metrics: bool = True,
    pages: DevPages | None = None,
) -> web.Application:
    """The bridge application on the given service layer (collaborators overridable).

    Every request is measured into ``metrics`` (and logged when ``access_log``), refused
    while ``admission`` drains; ``/metrics`` serves ``metrics``. The application
    carries the token route's :class:`TokenFastLane` (under :data:`FAST_LANE`), which
    :class:`BridgeEdge` may put in front of aiohttp.
    """
    cors = CorsPolicy(settings.cors_origins)
    edge = RouteGuard(
        admission=admission,
        metrics=metrics,
        cors=cors,
        access_log=access_log,
        connections=connections,
    )
    app = web.Application(client_max_size=handlers.MAX_BODY_BYTES)
    app[ROUTE_GUARD] = edge
    app[CONTEXT] = ctx = BridgeContext(
        service=service,
        registry=registry,
        verifier=verifier or SessionVerifier.from_settings(settings),
        limiter=limiter
        or TokenBucketLimiter(
            rate_per_s=settings.token_rate_limit_per_min / 60.0,
            burst=settings.token_rate_limit_burst,
        ),
        document=openapi_document(
            cookie_name=settings.session_cookie, max_ttl_s=tokens.max_token_ttl_s
        ),
        readiness=readiness or Readiness(),
        channel_limiter=TokenBucketLimiter(
            rate_per_s=settings.channel_rate_limit_per_min / 60.0,
            burst=settings.channel_rate_limit_burst,
            what="channel requests",
        ),
        body_timeout_s=body_timeout_s,
    )
    edge.route(
        app,
        TOKEN_PATH,
        {
            "GET": partial(handlers.issue_token, ctx),
            "POST": partial(handlers.issue_token, ctx),
            "OPTIONS": cors.preflight(["GET", "POST"]),
        },
    )
    edge.route(
        app,
        CHANNEL_PATH,
        {"POST": partial(handlers.open_channel, ctx), "OPTIONS": cors.preflight(["POST"])},
    )
    edge.route(app, OPENAPI_PATH, {"GET": partial(handlers.openapi, ctx)}, head=True)
    if pages is not None:
        edge.route(app, PAGE_PATH, {"GET": pages.page}, head=True)
        edge.route(app, ASSET_PATH, {"GET": pages.asset}, head=True)
        if pages.can_sign_in:
            edge.route(app, LOGIN_PATH, {"GET": pages.login})
    edge.route(app, "/healthz", {"GET": handlers.healthz}, head=True)
    edge.route(app, "/readyz", {"GET": partial(handlers.readyz, ctx)}, head=True)
    if serve_metrics:
        edge.route(app, METRICS_PATH, {"GET": metrics_handler(metrics)}, head=True)
    edge.catch_all(app)
    app[FAST_LANE] = TokenFastLane(
        ctx,
        path=TOKEN_PATH,
        admission=admission,
        record=edge.recorder("GET", TOKEN_PATH, TOKEN_PATH, 200),
    )
    return app


def split_host_port(addr: str) -> tuple[str, int]:
    """``host:port`` (IPv6 hosts in brackets) -> ``(host, port)``."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class BridgeEdge:
    """The bridge's HTTP listener on the gateway's event loop; ``port`` is known once started.

    Connections pass a :class:`ConnectionGuard` (a cap, a deadline for each request head,
    the application's token fast lane unless ``fast_lane`` is off); idle keep-alive
    connections close after the guard's ``keepalive_s`` (``keepalive_s`` here sets it when no
    guard is given). Stopping cancels what is still
    running at once: the gateway's drain (:class:`gateway.admission.Admission`) has already
    given in-flight requests the shutdown grace, so the grace is counted once.
    """

    def __init__(
        self,
        app: web.Application,
        addr: str,
        *,
        connections: ConnectionGuard | None = None,
        keepalive_s: float = 75.0,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        fast_lane: bool = True,
    ) -> None:
        self.app = app
        self._fast_lane = fast_lane
        self.connections = connections or ConnectionGuard(
            max_connections=4096, header_timeout_s=10.0, keepalive_s=keepalive_s
        )
        self._reuse_port = reuse_port
        self._ssl_context = ssl_context
        self._host, self._port = split_host_port(addr)
        self._runner: web.AppRunner | None = None

    @property
    def readiness(self) -> Readiness:
        """What ``/readyz`` reports besides the registry check."""
        return self.app[CONTEXT].readiness

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one picked for port 0)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the HTTP bridge is not started")
        address = self._runner.addresses[0]
        return int(address[1])

    async def start(self) -> None:
        """Bind and serve; ``/readyz`` turns ready."""
        runner = web.AppRunner(
            self.app,
            shutdown_timeout=0.0,
            access_log=None,
            keepalive_timeout=self.connections.keepalive_s,
        )
        await runner.setup()
        server = runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        malformed = self.app[ROUTE_GUARD].malformed
        lane = self.app.get(FAST_LANE) if self._fast_lane else None
        self.connections.lane = lane.answer if lane is not None else None

        def handler() -> asyncio.Protocol:
            return BridgeRequestHandler(
                server,
                loop=loop,
                keepalive_timeout=self.connections.keepalive_s,
                access_log=None,
                malformed=malformed,
            )

        try:
            await GuardedSite(
                runner,
                self._host,
                self._port,
                guard=self.connections,
                handler=handler,
                ssl_context=self._ssl_context,
                reuse_port=self._reuse_port,
            ).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.readiness.started = True

    async def stop(self) -> None:
        """Turn not-ready, stop accepting, cancel what still runs, close."""
        self.readiness.started = False
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.connections.close_all("the bridge is stopping")


def build_bridge_edge(
    service: ChatService,
    registry: OrderRegistry,
    settings: Settings,
    *,
    metrics: GatewayMetrics,
    admission: Admission,
) -> BridgeEdge:
    """The bridge for ``CHAT_GATEWAY_HTTP_ADDR`` (port 0: any free port), not started yet;
    HTTPS when ``CHAT_GATEWAY_HTTP_TLS_CERT_FILE`` is set."""
    edge = settings.edge
    connections = ConnectionGuard(
        max_connections=connection_cap(edge.http_max_connections),
        header_timeout_s=edge.http_header_timeout_s,
        keepalive_s=edge.http_keepalive_s,
        metrics=metrics,
    )
    metrics.http_connections_open.set_function(lambda: connections.open_connections)
    app = build_bridge_app(
        service=service,
        registry=registry,
        settings=settings.bridge,
        tokens=settings.tokens,
        metrics=metrics,
        admission=admission,
        access_log=settings.observability.access_log,
        connections=connections,
        body_timeout_s=edge.http_body_timeout_s,
        serve_metrics=settings.observability.metrics_addr is None,
        pages=dev_pages(settings),
    )
    return BridgeEdge(
        app,
        settings.edge.http_addr,
        connections=connections,
        ssl_context=server_ssl_context(settings.edge),
        reuse_port=settings.edge.reuse_port,
        fast_lane=settings.edge.http_fast_lane,
    )


def dev_pages(settings: Settings) -> DevPages | None:
    """The order chat page when ``CHAT_GATEWAY_DEV_PAGES`` is on; its sign-in only in the dev
    profile (which signs sessions with the documented dev secret)."""
    bridge = settings.bridge
    if not bridge.dev_pages:
        return None
    dist = Path(bridge.dev_pages_dir) if bridge.dev_pages_dir else DEFAULT_DIST
    if not (dist / "order-chat.html").is_file():
        logger.warning("CHAT_GATEWAY_DEV_PAGES: no built page in %s (run `make web`)", dist)
    return DevPages(
        dist,
        stream_url=settings.stream.stream_base_url if settings.stream.backend == "stream" else None,
        session_secret=bridge.session_secret if settings.dev_profile else None,
        cookie_name=bridge.session_cookie,
    )


def connection_cap(configured: int) -> int:
    """The bridge's connection cap: the configured one, but never more than half the
    process's file descriptor limit, so the gRPC port, the registry and Stream always keep
    descriptors of their own."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(16, min(configured, soft // 2))


def server_ssl_context(settings: EdgeSettings) -> ssl.SSLContext | None:
    """The bridge's TLS context from its cert/key files, or ``None`` for plain HTTP."""
    if not settings.http_tls_cert_file or not settings.http_tls_key_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.http_tls_cert_file, settings.http_tls_key_file)
    return context
