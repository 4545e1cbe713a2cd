"""Fixtures of the HTTP bridge tests: an HTTP client, the default gateway's bridge, an order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.domain import Participant
from tests.helpers.bridge import BUYER, ORDER, SELLER


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client (no cookie jar: tests send cookies explicitly)."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=15)
    ) as session:
        yield session


@pytest.fixture
def bridge_url(gateway: Gateway) -> str:
    """Base URL of the default test gateway's bridge."""
    return f"http://127.0.0.1:{gateway.http_port}"


@pytest.fixture
async def order(gateway: Gateway) -> str:
    """Order ``ord-1`` of buyer-1 and seller-1, recorded through the service layer."""
    await gateway.service.ensure_order_channel(ORDER, Participant(BUYER), Participant(SELLER))
    return ORDER
