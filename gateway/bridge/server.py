"""The bridge's aiohttp application and its listener (:class:`BridgeEdge`)."""

from __future__ import annotations

import logging
import ssl
from functools import partial

from aiohttp import web

from gateway.admission import Admission
from gateway.bridge import handlers
from gateway.bridge.cors import CorsPolicy
from gateway.bridge.guard import RouteGuard
from gateway.bridge.handlers import CONTEXT, BridgeContext, Readiness
from gateway.bridge.openapi import openapi_document
from gateway.bridge.probes import METRICS_PATH, metrics_handler
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
SHUTDOWN_TIMEOUT_S = 10.0


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
) -> web.Application:
    """The bridge application on the given service layer (collaborators overridable).

    Every request is measured into ``metrics`` (and logged when ``access_log``), refused
    while ``admission`` drains; ``/metrics`` serves ``metrics``.
    """
    cors = CorsPolicy(settings.cors_origins)
    edge = RouteGuard(admission=admission, metrics=metrics, cors=cors, access_log=access_log)
    app = web.Application(client_max_size=handlers.MAX_BODY_BYTES)
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
    edge.route(app, "/healthz", {"GET": handlers.healthz}, head=True)
    edge.route(app, "/readyz", {"GET": partial(handlers.readyz, ctx)}, head=True)
    edge.route(app, METRICS_PATH, {"GET": metrics_handler(metrics)}, head=True)
    edge.catch_all(app)
    return app


def split_host_port(addr: str) -> tuple[str, int]:
    """``host:port`` (IPv6 hosts in brackets) -> ``(host, port)``."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class BridgeEdge:
    """The bridge's HTTP listener on the gateway's event loop; ``port`` is known once started."""

    def __init__(
        self,
        app: web.Application,
        addr: str,
        *,
        shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.app = app
        self._reuse_port = reuse_port
        self._shutdown_timeout_s = shutdown_timeout_s
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
        runner = web.AppRunner(self.app, shutdown_timeout=self._shutdown_timeout_s, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(
                runner,
                self._host,
                self._port,
                ssl_context=self._ssl_context,
                reuse_port=self._reuse_port or None,
            ).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.readiness.started = True

    async def stop(self) -> None:
        """Turn not-ready, stop accepting, let in-flight requests finish, close."""
        self.readiness.started = False
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


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
    app = build_bridge_app(
        service=service,
        registry=registry,
        settings=settings.bridge,
        tokens=settings.tokens,
        metrics=metrics,
        admission=admission,
        access_log=settings.observability.access_log,
    )
    return BridgeEdge(
        app,
        settings.edge.http_addr,
        shutdown_timeout_s=settings.edge.shutdown_grace_s,
        ssl_context=server_ssl_context(settings.edge),
        reuse_port=settings.edge.reuse_port,
    )


def server_ssl_context(settings: EdgeSettings) -> ssl.SSLContext | None:
    """The bridge's TLS context from its cert/key files, or ``None`` for plain HTTP."""
    if not settings.http_tls_cert_file or not settings.http_tls_key_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.http_tls_cert_file, settings.http_tls_key_file)
    return context
