"""Composition root: builds every adapter from :class:`Settings` and runs the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from datetime import timedelta

from gateway.admission import Admission
from gateway.bridge import BridgeEdge, build_bridge_edge
from gateway.chat import ChatBackend
from gateway.chat.local import LocalChatBackend
from gateway.chat.readiness import log_stream_readiness
from gateway.chat.stream import StreamChatBackend
from gateway.config import ConfigError, Settings
from gateway.metrics import GatewayMetrics
from gateway.registry import OrderRegistry
from gateway.registry.cache import SyncedOrderCache
from gateway.registry.postgres import PostgresRegistry
from gateway.registry.sqlite import SqliteRegistry
from gateway.rpc.observe import RpcObserver
from gateway.rpc.server import GrpcEdge, build_grpc_edge, server_credentials
from gateway.service import ChatService, TokenPolicy
from gateway.sync import ChannelSync, SyncPolicy
from gateway.tokens import StreamTokenSigner, utc_now

logger = logging.getLogger(__name__)


async def open_registry(settings: Settings) -> OrderRegistry:
    """The registry named by ``CHAT_GATEWAY_DATABASE_URL``, migrated and ready."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        return await SqliteRegistry.open(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        return await PostgresRegistry.open(
            url, pool_size=settings.database_pool_size, timeout_s=settings.database_timeout_s
        )
    raise ConfigError(f"CHAT_GATEWAY_DATABASE_URL: unsupported database {url.split(':')[0]!r}")


async def open_backend(settings: Settings, metrics: GatewayMetrics | None = None) -> ChatBackend:
    """The chat backend named by ``CHAT_GATEWAY_BACKEND``; built inside the running loop."""
    if settings.backend == "local":
        return LocalChatBackend()
    return await StreamChatBackend.open(settings, metrics=metrics)


@dataclass
class Gateway:
    """A running gateway: its adapters, service, edges and background tasks."""

    settings: Settings
    registry: OrderRegistry
    backend: ChatBackend
    service: ChatService
    sync: ChannelSync
    grpc: GrpcEdge
    bridge: BridgeEdge
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    admission: Admission = field(default_factory=lambda: Admission(max_concurrent_rpcs=1000))
    _stop_sync: asyncio.Event = field(default_factory=asyncio.Event)
    _sync_task: asyncio.Task[None] | None = None
    _metrics_task: asyncio.Task[None] | None = None

    @property
    def grpc_port(self) -> int:
        """The bound gRPC port (useful when configured with port 0)."""
        return self.grpc.port

    @property
    def http_port(self) -> int:
        """The bound HTTP bridge port (known once started; useful with port 0)."""
        return self.bridge.port

    async def start(self) -> None:
        """Start the background sync and the edges; health turns SERVING last."""
        logger.info("gateway starting", extra={"event": "starting"})
        self._sync_task = asyncio.create_task(self.sync.run(self._stop_sync), name="sync-worker")
        self._metrics_task = asyncio.create_task(self._refresh_metrics(), name="metrics-refresh")
        await self.grpc.start()
        try:
            await self.bridge.start()
        except BaseException:
            await self.grpc.stop(0)
            self._metrics_task.cancel()
            raise
        logger.info(
            "http bridge serving http=%s",
            f"{self.settings.http_addr.rpartition(':')[0]}:{self.http_port}",
        )
        logger.info(
            "gateway serving grpc=%s backend=%s database=%s",
            f"{self.settings.grpc_addr.rpartition(':')[0]}:{self.grpc_port}",
            self.settings.backend,
            self.settings.database_url.split("://")[0],
            extra={"event": "serving"},
        )

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain, then stop the edges, the worker, the backend and the registry.

        Health turns NOT_SERVING (and ``/readyz`` 503) first; new RPCs and API requests
        are refused while those in flight get up to ``grace_s`` (default
        ``CHAT_GATEWAY_SHUTDOWN_GRACE``) to finish; whatever is left is cancelled.
        """
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        logger.info(
            "gateway draining (grace %.1fs, %d in flight)",
            grace,
            self.admission.in_flight,
            extra={"event": "draining"},
        )
        self.bridge.readiness.started = False
        await self.grpc.set_serving(False)
        if not await self.admission.drain(grace):
            logger.warning(
                "%d request(s) still in flight after the grace period; cancelling them",
                self.admission.in_flight,
            )
        remaining = max(deadline - loop.time(), 0.0)
        await asyncio.gather(self.bridge.stop(), self.grpc.stop(remaining))
        self._stop_sync.set()
        if self._metrics_task is not None:
            self._metrics_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._metrics_task
        if self._sync_task is not None:
            # A worker stuck on a hanging Stream call is cancelled after the grace period;
            # its claim lapses with the lease and the next start retries the order.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(
                    self._sync_task,
                    timeout=max(deadline - loop.time(), min(grace, 0.5)),
                )
        await self.backend.close()
        await self.registry.close()
        logger.info("gateway stopped", extra={"event": "stopped"})

    async def refresh_metrics(self) -> None:
        """Publish the sync backlog gauges from the registry now."""
        stats = await self.registry.pending_stats()
        self.metrics.set_sync_backlog(stats.count, stats.oldest_create_time, utc_now())

    async def _refresh_metrics(self) -> None:
        # In the background, never on a scrape: a slow registry must not stall /metrics.
        while True:
            try:
                await self.refresh_metrics()
            except Exception:
                logger.warning("cannot refresh the sync backlog metrics", exc_info=True)
            await asyncio.sleep(self.settings.metrics_refresh_s)


async def build_gateway(settings: Settings) -> Gateway:
    """Open every adapter and wire the gateway (not started yet)."""
    metrics = GatewayMetrics()
    admission = Admission(max_concurrent_rpcs=settings.max_concurrent_rpcs)
    metrics.rpcs_in_flight.set_function(lambda: admission.rpcs)
    registry = SyncedOrderCache(
        await open_registry(settings), max_entries=settings.registry_cache_entries
    )
    try:
        backend = await open_backend(settings, metrics)
    except BaseException:
        await registry.close()
        raise
    sync = ChannelSync(
        registry=registry,
        backend=backend,
        policy=SyncPolicy(
            attempt_timeout_s=settings.stream_timeout_s,
            poll_interval_s=settings.sync_poll_interval_s,
            lease_s=settings.sync_lease_s,
            backoff_cap_s=settings.sync_backoff_cap_s,
        ),
    )
    service = ChatService(
        registry=registry,
        sync=sync,
        signer=StreamTokenSigner(
            api_key=settings.stream_api_key, api_secret=settings.stream_api_secret
        ),
        channel_type=settings.channel_type,
        token_policy=TokenPolicy(
            default_ttl=timedelta(seconds=settings.default_token_ttl_s),
            max_ttl=timedelta(seconds=settings.max_token_ttl_s),
        ),
        inline_sync_budget_s=settings.inline_sync_budget_s,
    )
    try:
        edge = build_grpc_edge(
            service,
            settings.services,
            settings.grpc_addr,
            observer=RpcObserver(
                admission=admission, metrics=metrics, access_log=settings.access_log
            ),
            credentials=server_credentials(settings),
            max_message_bytes=settings.max_message_bytes,
            reuse_port=settings.reuse_port,
        )
        bridge = build_bridge_edge(
            service, registry, settings, metrics=metrics, admission=admission
        )
    except BaseException:
        await backend.close()
        await registry.close()
        raise
    return Gateway(
        settings=settings,
        registry=registry,
        backend=backend,
        service=service,
        sync=sync,
        grpc=edge,
        bridge=bridge,
        metrics=metrics,
        admission=admission,
    )


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    if settings.dev_profile:
        logger.warning(
            "DEV PROFILE: running with the documented dev service keys, session secret and "
            "Stream credentials; never use them outside local development"
        )
    gateway = await build_gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    readiness: asyncio.Task[bool] | None = None
    if isinstance(gateway.backend, StreamChatBackend):
        # Report-only and in the background: a misconfigured or unreachable Stream app
        # must not keep the gateway from recording orders.
        readiness = asyncio.create_task(
            log_stream_readiness(gateway.backend, settings.channel_type), name="stream-readiness"
        )
    await stop.wait()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # A second signal while draining changes nothing: the grace period bounds the stop.
        loop.add_signal_handler(sig, lambda: logger.info("already draining"))
    if readiness is not None:
        readiness.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await readiness
    await gateway.stop()
