"""Shared fixtures: settings for tests, a real gateway on a free loopback port, stubs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from gateway.config import (
    DEV_ORDER_SERVICE_KEY,
    DEV_WEB_BACKEND_KEY,
    Settings,
    load_settings,
)
from tests.pg import pg_private, pg_server, pg_url  # noqa: F401  (throwaway PostgreSQL fixtures)
from tests.stream_double.fixtures import stream_double, stream_env  # noqa: F401  (fixtures)

pytest_plugins = ["tests.helpers.raising"]

ORDER_SERVICE = (("authorization", f"Bearer {DEV_ORDER_SERVICE_KEY}"),)
WEB_BACKEND = (("authorization", f"Bearer {DEV_WEB_BACKEND_KEY}"),)

SettingsFactory = Callable[..., Settings]


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
async def gateway(make_settings: SettingsFactory) -> AsyncIterator[Gateway]:
    """A started dev-profile gateway on loopback; stopped after the test."""
    gw = Gateway(make_settings())
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop(grace_s=1.0)


@pytest.fixture
async def channel(gateway: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    """A client channel to the test gateway."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.ChatGatewayAsyncStub:
    """A ChatGateway (asyncio) stub on the test channel."""
    return pb_grpc.ChatGatewayStub(channel)
