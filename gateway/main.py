"""Composition root: builds every adapter from :class:`Settings` and runs the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from datetime import timedelta

from gateway.bridge import BridgeEdge, build_bridge_edge
from gateway.chat import ChatBackend
from gateway.chat.local import LocalChatBackend
from gateway.chat.readiness import log_stream_readiness
from gateway.chat.stream import StreamChatBackend
from gateway.config import ConfigError, Settings
from gateway.registry import OrderRegistry
from gateway.registry.cache import SyncedOrderCache
from gateway.registry.postgres import PostgresRegistry
from gateway.registry.sqlite import SqliteRegistry
from gateway.rpc.server import GrpcEdge, build_grpc_edge
from gateway.service import ChatService, TokenPolicy
from gateway.sync import ChannelSync, SyncPolicy
from gateway.tokens import StreamTokenSigner

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


async def open_backend(settings: Settings) -> ChatBackend:
    """The chat backend named by ``CHAT_GATEWAY_BACKEND``; built inside the running loop."""
    if settings.backend == "local":
        return LocalChatBackend()
    return await StreamChatBackend.open(settings)


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
    _stop_sync: asyncio.Event = field(default_factory=asyncio.Event)
    _sync_task: asyncio.Task[None] | None = None

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
        self._sync_task = asyncio.create_task(self.sync.run(self._stop_sync), name="sync-worker")
        await self.grpc.start()
        try:
            await self.bridge.start()
        except BaseException:
            await self.grpc.stop(0)
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
        )

    async def stop(self, grace_s: float = 10.0) -> None:
        """Drain the edges, stop the worker, close the backend and the registry."""
        logger.info("gateway stopping (grace %.1fs)", grace_s)
        await self.bridge.stop()
        await self.grpc.stop(grace_s)
        self._stop_sync.set()
        if self._sync_task is not None:
            # A worker stuck on a hanging Stream call is cancelled after the grace period;
            # its claim lapses with the lease and the next start retries the order.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._sync_task, timeout=grace_s)
        await self.backend.close()
        await self.registry.close()
        logger.info("gateway stopped")


async def build_gateway(settings: Settings) -> Gateway:
    """Open every adapter and wire the gateway (not started yet)."""
    registry = SyncedOrderCache(
        await open_registry(settings), max_entries=settings.registry_cache_entries
    )
    try:
        backend = await open_backend(settings)
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
    edge = build_grpc_edge(service, settings.services, settings.grpc_addr)
    bridge = build_bridge_edge(service, registry, settings)
    return Gateway(
        settings=settings,
        registry=registry,
        backend=backend,
        service=service,
        sync=sync,
        grpc=edge,
        bridge=bridge,
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
    if readiness is not None:
        readiness.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await readiness
    await gateway.stop()
