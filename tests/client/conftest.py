"""Fixtures for the client tests: a real gateway process, fake in-process servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.helpers.fake_gateway import FakeGateway, start_fake
from tests.helpers.processes import GatewayProcess


@pytest.fixture(scope="module")
def gateway_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One dev-profile gateway process for a test module."""
    gw = GatewayProcess(tmp_path_factory.mktemp("gateway"))
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def own_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A gateway process the test may stop and start again."""
    gw = GatewayProcess(tmp_path)
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    """An in-process ChatGateway whose behaviour the test scripts."""
    server, fake = await start_fake()
    try:
        yield fake
    finally:
        await server.stop(0)
