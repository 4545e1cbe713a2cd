"""The composition root: :class:`Gateway` builds every adapter from :class:`Settings`,
wires them, runs them, and takes them down again.

``async with Gateway(settings) as gw:`` starts it; leaving the block drains and stops it.
Start-up is one :class:`contextlib.AsyncExitStack`: every step registers its own undo
as soon as it has succeeded, so a failure at any step unwinds exactly the steps before it
(no task, thread, socket or connection is left behind), and a normal stop runs the same
undo steps after the drain. The command line (``python -m gateway``) lives in
:mod:`gateway.__main__`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import signal
from datetime import timedelta
from types import TracebackType

from gateway import reconcile
from gateway.admission import Admission
from gateway.bridge import BridgeEdge, build_bridge_edge
from gateway.bridge.probes import MetricsEdge
from gateway.chat import ChatBackend
from gateway.chat.local import LocalChatBackend
from gateway.chat.readiness import log_stream_readiness
from gateway.chat.stream import StreamChatBackend
from gateway.config import ConfigError, RegistrySettings, Settings, StreamSettings
from gateway.metrics import GatewayMetrics
from gateway.outbox import ChannelSync, SyncPolicy
from gateway.registry import OrderRegistry
from gateway.registry.postgres import PostgresRegistry
from gateway.registry.sqlite import SqliteRegistry
from gateway.rpc.server import GrpcEdge
from gateway.rpc.telemetry import RpcTelemetry
from gateway.service import ChatService, TokenPolicy
from gateway.tokens import StreamTokenSigner, utc_now

logger = logging.getLogger(__name__)

__all__ = ["Gateway", "open_backend", "open_registry", "reconcile_once", "serve"]


async def open_registry(settings: RegistrySettings) -> OrderRegistry:
    """The registry named by ``CHAT_GATEWAY_DATABASE_URL``, migrated and ready."""
    url = settings.database_url
    if url.startswith("sqlite:///"):
        return await SqliteRegistry.open(
            url.removeprefix("sqlite:///"), timeout_s=settings.database_timeout_s
        )
    if url.startswith(("postgresql://", "postgres://")):
        return await PostgresRegistry.open(
            url, pool_size=settings.database_pool_size, timeout_s=settings.database_timeout_s
        )
    raise ConfigError(f"CHAT_GATEWAY_DATABASE_URL: unsupported database {url.split(':')[0]!r}")


async def open_backend(
    settings: StreamSettings, metrics: GatewayMetrics | None = None
) -> ChatBackend:
    """The chat backend named by ``CHAT_GATEWAY_BACKEND``; built inside the running loop."""
    if settings.backend == "local":
        return LocalChatBackend()
    return await StreamChatBackend.open(settings, metrics=metrics)


class Gateway:
    """One gateway: registry, chat backend, service layer, sync worker, gRPC and HTTP edges.

    The adapters exist only while it runs (between :meth:`start` and :meth:`stop`, or
    inside ``async with``); :attr:`metrics` and :attr:`admission` exist from construction.
    """

    registry: OrderRegistry
    backend: ChatBackend
    service: ChatService
    sync: ChannelSync
    grpc: GrpcEdge
    bridge: BridgeEdge
    metrics_edge: MetricsEdge | None = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.admission = Admission(max_concurrent_rpcs=settings.edge.max_concurrent_rpcs)
        self.metrics.rpcs_in_flight.set_function(lambda: self.admission.rpcs)
        self._stack: contextlib.AsyncExitStack | None = None
        self._deadline = 0.0  # loop time by which stopping edges must be done

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def grpc_port(self) -> int:
        """The bound gRPC port (useful when configured with port 0)."""
        return self.grpc.port

    @property
    def http_port(self) -> int:
        """The bound HTTP bridge port (useful when configured with port 0)."""
        return self.bridge.port

    async def start(self) -> None:
        """Open and start everything; health turns SERVING last.

        On a failure at any step, what was started before it is stopped again, in reverse
        order, and the error propagates.
        """
        if self._stack is not None:
            raise RuntimeError("the gateway is already started")
        logger.info("gateway starting", extra={"event": "starting"})
        settings = self.settings
        async with contextlib.AsyncExitStack() as stack:
            registry = await open_registry(settings.registry)
            stack.push_async_callback(registry.close)
            self.registry = registry
            self.backend = await open_backend(settings.stream, self.metrics)
            stack.push_async_callback(self.backend.close)
            self.sync = ChannelSync(
                registry=self.registry,
                backend=self.backend,
                policy=SyncPolicy(
                    attempt_timeout_s=settings.stream.stream_timeout_s,
                    poll_interval_s=settings.sync.sync_poll_interval_s,
                    lease_s=settings.sync.sync_lease_s,
                    backoff_cap_s=settings.sync.sync_backoff_cap_s,
                ),
            )
            self.service = ChatService(
                registry=self.registry,
                sync=self.sync,
                signer=StreamTokenSigner(
                    api_key=settings.stream.stream_api_key,
                    api_secret=settings.stream.stream_api_secret,
                    iat_skew_s=settings.tokens.token_iat_skew_s,
                ),
                channel_type=settings.stream.channel_type,
                token_policy=TokenPolicy(
                    default_ttl=timedelta(seconds=settings.tokens.default_token_ttl_s),
                    max_ttl=timedelta(seconds=settings.tokens.max_token_ttl_s),
                    iat_skew=timedelta(seconds=settings.tokens.token_iat_skew_s),
                ),
                inline_sync_budget_s=settings.sync.inline_sync_budget_s,
            )
            self.grpc = GrpcEdge(
                self.service,
                settings.edge,
                telemetry=RpcTelemetry(
                    metrics=self.metrics, access_log=settings.observability.access_log
                ),
                admission=self.admission,
            )
            self.bridge = build_bridge_edge(
                self.service,
                self.registry,
                settings,
                metrics=self.metrics,
                admission=self.admission,
            )
            stop_sync = asyncio.Event()
            worker = asyncio.create_task(self.sync.run(stop_sync), name="sync-worker")
            stack.push_async_callback(self._stop_sync_worker, worker, stop_sync)
            refresher = asyncio.create_task(self._refresh_metrics(), name="metrics-refresh")
            stack.push_async_callback(_cancel, refresher)
            await self.grpc.start()
            stack.push_async_callback(self._stop_grpc)
            await self.bridge.start()
            stack.push_async_callback(self.bridge.stop)
            if settings.observability.metrics_addr is not None:
                self.metrics_edge = MetricsEdge(self.metrics, settings.observability.metrics_addr)
                await self.metrics_edge.start()
                stack.push_async_callback(self.metrics_edge.stop)
            self._stack = stack.pop_all()
        logger.info(
            "http bridge serving http=%s",
            f"{settings.edge.http_addr.rpartition(':')[0]}:{self.http_port}",
        )
        logger.info(
            "gateway serving grpc=%s backend=%s database=%s",
            f"{settings.edge.grpc_addr.rpartition(':')[0]}:{self.grpc_port}",
            settings.stream.backend,
            settings.registry.database_url.split("://")[0],
            extra={"event": "serving"},
        )

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain, then stop the edges, the worker, the backend and the registry.

        Health turns NOT_SERVING (and ``/readyz`` 503) first; new RPCs and API requests
        are refused while those in flight get up to ``grace_s`` (default
        ``CHAT_GATEWAY_SHUTDOWN_GRACE``) to finish; whatever is left is cancelled.
        """
        stack, self._stack = self._stack, None
        if stack is None:
            return
        grace = self.settings.edge.shutdown_grace_s if grace_s is None else grace_s
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + grace
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
        await stack.aclose()
        logger.info("gateway stopped", extra={"event": "stopped"})

    async def refresh_metrics(self) -> None:
        """Publish the sync backlog gauges from the registry now."""
        stats = await self.registry.pending_stats()
        self.metrics.set_sync_backlog(stats.count, stats.oldest_change_time, utc_now())

    # -- start-up steps and their undo -------------------------------------------------------

    def _remaining(self) -> float:
        return max(self._deadline - asyncio.get_running_loop().time(), 0.0)

    async def _stop_grpc(self) -> None:
        await self.grpc.stop(self._remaining())

    async def _stop_sync_worker(self, worker: asyncio.Task[None], stop: asyncio.Event) -> None:
        stop.set()
        # A worker stuck on a hanging Stream call is cancelled after the grace period; its
        # claim lapses with the lease and the next start retries the order.
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(worker, timeout=max(self._remaining(), 0.5))

    async def _refresh_metrics(self) -> None:
        # In the background, never on a scrape: a slow registry must not stall /metrics.
        while True:
            try:
                await self.refresh_metrics()
            except Exception:
                logger.warning("cannot refresh the sync backlog metrics", exc_info=True)
            await asyncio.sleep(self.settings.observability.metrics_refresh_s)


async def reconcile_once(settings: Settings, *, apply: bool) -> reconcile.Report:
    """``python -m gateway reconcile``: compare (and with ``apply``, repair) once.

    Raises:
        ChatBackendError: Stream cannot be asked.
        UnavailableError: the registry cannot be read.
    """
    async with contextlib.AsyncExitStack() as stack:
        registry = await open_registry(settings.registry)
        stack.push_async_callback(registry.close)
        backend = await open_backend(settings.stream)
        stack.push_async_callback(backend.close)
        report = await reconcile.reconcile(registry, backend, settings.stream.channel_type)
        if apply and not report.clean:
            sync = ChannelSync(
                registry=registry,
                backend=backend,
                policy=SyncPolicy(
                    attempt_timeout_s=settings.stream.stream_timeout_s,
                    poll_interval_s=0.2,
                    lease_s=settings.sync.sync_lease_s,
                    backoff_cap_s=min(settings.sync.sync_backoff_cap_s, 10.0),
                ),
            )
            await reconcile.apply(report, registry, sync)
            report.stream_calls = backend.calls
        return report


def raise_descriptor_limit() -> None:
    """Lift the soft file-descriptor limit to the hard one (what ``LimitNOFILE`` or
    ``ulimit -Hn`` allows): every connection costs a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the file descriptor limit to %s: %s", hard, exc)
            return
    logger.info("file descriptor limit: %s", hard)


GC_GEN0_THRESHOLD = 10_000
"""Allocations (less deallocations) of container objects between two young-generation
collections; Python's default is 700."""


def settle_heap() -> None:
    """Once serving: collect, then freeze what startup left (modules, descriptors, the
    wired-up gateway) out of the garbage collector's sight, and collect the young
    generation less often.

    Every request allocates a few container objects and frees nearly all of them by
    reference count, so frequent young collections mostly re-walk the objects of requests in
    flight, and each full collection walked the whole startup heap with the event loop
    stopped (40-50 ms). Over a gateway's life in ``make bench``'s new-orders run, the
    collector's share of its CPU fell from about 7 % to 2 %.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, older, oldest)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    if settings.dev_profile:
        logger.warning(
            "DEV PROFILE: running with the documented dev service keys, session secret and "
            "Stream credentials; never use them outside local development"
        )
    raise_descriptor_limit()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Gateway(settings) as gateway:
        settle_heap()
        readiness: asyncio.Task[bool] | None = None
        if isinstance(gateway.backend, StreamChatBackend):
            # Report-only and in the background: a misconfigured or unreachable Stream app
            # must not keep the gateway from recording orders.
            readiness = asyncio.create_task(
                log_stream_readiness(gateway.backend, settings.stream.channel_type),
                name="stream-readiness",
            )
        await stop.wait()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # A second signal while draining changes nothing: the grace period bounds the stop.
            loop.add_signal_handler(sig, lambda: logger.info("already draining"))
        if readiness is not None:
            readiness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readiness
