"""In-process gateways for tests: dev-profile settings, and one fixture that starts gateways
and stops every one of them after the test.

Fixtures (registered by ``tests/conftest.py``):

- ``make_settings``: dev-profile :class:`Settings` on the test's SQLite file and free ports;
- ``start_gateway``: an async factory, ``await start_gateway(env_or_settings, **overrides)``;
- ``gateway``: one started dev-profile gateway; ``channel`` and ``stub`` talk to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol

import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from gateway.config import Settings, load_settings
from tests.helpers.rpc import warmed

SettingsFactory = Callable[..., Settings]
"""``make_settings(env=None, **overrides) -> Settings``."""

STOP_GRACE_S = 1.0
"""How long a test gateway's calls in flight get when it is stopped after the test."""


class GatewayFactory(Protocol):
    """``start_gateway``: start a gateway; it is stopped after the test."""

    def __call__(
        self,
        settings: Settings | dict[str, str] | None = None,
        /,
        *,
        stop_grace_s: float = STOP_GRACE_S,
        **overrides: Any,
    ) -> Awaitable[Gateway]: ...


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """Dev-profile settings on a fresh SQLite file and free loopback ports.

    Keyword arguments override fields; ``env`` adds environment variables.
    """

    def factory(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        environ = {
            "CHAT_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
            "CHAT_GATEWAY_GRPC_ADDR": "127.0.0.1:0",
            "CHAT_GATEWAY_HTTP_ADDR": "127.0.0.1:0",
            **(env or {}),
        }
        settings = load_settings(environ, dev=True)
        return settings.with_overrides(**overrides) if overrides else settings

    return factory


@pytest.fixture
async def start_gateway(make_settings: SettingsFactory) -> AsyncIterator[GatewayFactory]:
    """Start gateways: ``await start_gateway()`` for the dev profile,
    ``start_gateway(env, **overrides)`` for :func:`make_settings` with environment variables
    and field overrides, or ``start_gateway(settings)`` for ready-made settings. Every
    gateway started is stopped after the test (``stop_grace_s`` for its calls in flight),
    the last started first."""
    async with AsyncExitStack() as stack:

        async def start(
            settings: Settings | dict[str, str] | None = None,
            /,
            *,
            stop_grace_s: float = STOP_GRACE_S,
            **overrides: Any,
        ) -> Gateway:
            if not isinstance(settings, Settings):
                settings = make_settings(settings, **overrides)
            elif overrides:
                settings = settings.with_overrides(**overrides)
            gw = Gateway(settings)
            await gw.start()
            stack.push_async_callback(gw.stop, stop_grace_s)
            return gw

        yield start


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> Gateway:
    """A started dev-profile gateway on loopback; stopped after the test."""
    return await start_gateway()


@pytest.fixture
async def channel(gateway: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    """A client channel to the test gateway."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as ch:
        yield await warmed(ch)


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.ChatGatewayAsyncStub:
    """A ChatGateway (asyncio) stub on the test channel."""
    return pb_grpc.ChatGatewayStub(channel)
