"""Fixtures of the browser tests: the bundles, Chromium, and a chat world on loopback.

The world is real everywhere but Stream: the gateway (bridge included) as the other tests
start it, in stream mode against the Stream double (its server side for the gateway, its
client side for the browser SDK), and the test site serving the built page from a second
origin that both the bridge and the double answer with CORS.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.domain import Participant, SyncState
from tests.acceptance.web import bundle, cdp, site
from tests.helpers.bridge import session_jwt
from tests.helpers.gateways import GatewayFactory
from tests.helpers.polling import eventually
from tests.stream_double import StreamDouble
from tests.stream_double.realtime import RealtimeState, state_of

SESSION_COOKIE = "tt_session"
SESSION_TTL_S = 3600


@pytest.fixture(scope="session")
def web_bundles() -> bundle.Bundles:
    """The page and the harness, built once per session from the current sources."""
    return bundle.build()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[cdp.Browser]:
    async with cdp.launch(tmp_path) as launched:
        yield launched


async def next_second() -> None:
    """Wait into the next whole second: tokens carry whole seconds, so a token issued from
    now on has a later ``exp`` than every token issued so far."""
    await asyncio.sleep(math.ceil(time.time()) - time.time() + 0.05)


@dataclass
class ChatWorld:
    double: StreamDouble
    gateway: Gateway
    site: site.Site
    browser: cdp.Browser

    @property
    def stream(self) -> RealtimeState:
        return state_of(self.double)

    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.http_port}"

    async def order(self, order_id: str, buyer: str, seller: str, *, synced: bool = True) -> None:
        """Place an order (as the order service does); wait until Stream has its channel."""
        await self.gateway.service.ensure_order_channel(
            order_id, Participant(buyer, f"{buyer} name"), Participant(seller, f"{seller} name")
        )
        if synced:

            async def is_synced() -> bool:
                channel = await self.gateway.registry.get(order_id)
                return channel is not None and channel.sync_state is SyncState.SYNCED

            await eventually(
                is_synced, timeout_s=15.0, message=f"order {order_id} synced to Stream"
            )

    async def signed_in(self, user_id: str) -> cdp.Page:
        """A tab of its own browser context, with ``user_id``'s TradeTrust session cookie."""
        context = await self.browser.new_context()
        await self.browser.set_cookie(
            context, SESSION_COOKIE, session_jwt(user_id, exp_in=SESSION_TTL_S), "127.0.0.1"
        )
        return await self.browser.new_page(context)

    async def open_chat(self, page: cdp.Page, order_id: str) -> None:
        await page.goto(self.site.page_url(order_id))

    async def open_harness(self, page: cdp.Page) -> None:
        await page.goto(self.site.harness_url)
        await page.wait_for("window.harnessReady === true", what="the harness loaded")


@pytest.fixture
async def world(
    start_gateway: GatewayFactory,
    stream_double: StreamDouble,
    stream_env: dict[str, str],
    web_bundles: bundle.Bundles,
    browser: cdp.Browser,
) -> AsyncIterator[ChatWorld]:
    async with site.serve(web_bundles) as web:
        state_of(stream_double).cors_origins.add(web.origin)
        gateway = await start_gateway(stream_env, cors_origins=(web.origin,))
        world = ChatWorld(stream_double, gateway, web, browser)
        web.config.bridge_url = world.bridge_url
        web.config.stream_url = stream_double.url
        yield world
