"""The bridge's channel route through the order's life: a support agent opens the chat
with role ``support``; a closed order still answers 200, ``state: closed``."""

from __future__ import annotations

import aiohttp

from gateway.app import Gateway
from gateway.domain import Participant
from tests.helpers.bridge import BUYER, CHANNEL_PATH, SELLER, bearer, error_of, session_jwt

AGENT = "sue-1"


async def _open(
    http: aiohttp.ClientSession, bridge_url: str, user: str, order: str
) -> tuple[int, dict[str, object]]:
    async with http.post(
        bridge_url + CHANNEL_PATH, json={"orderId": order}, headers=bearer(session_jwt(user))
    ) as response:
        return response.status, await response.json()


async def test_an_agent_gets_the_support_role_and_sees_every_member(
    gateway: Gateway, http: aiohttp.ClientSession, bridge_url: str, order: str
) -> None:
    status, _ = await _open(http, bridge_url, AGENT, order)
    assert status == 403  # not yet in the order
    await gateway.service.open_dispute(order, Participant(AGENT), "refund", service="support-tool")
    status, body = await _open(http, bridge_url, AGENT, order)
    assert status == 200
    assert body["role"] == "support" and body["state"] == "disputed"
    assert body["members"] == [BUYER, SELLER, AGENT]


async def test_a_closed_order_still_opens_read_only(
    gateway: Gateway, http: aiohttp.ClientSession, bridge_url: str, order: str
) -> None:
    await gateway.service.close_order_channel(order, "delivered", service="order-service")
    for user, role in ((BUYER, "buyer"), (SELLER, "seller")):
        status, body = await _open(http, bridge_url, user, order)
        assert status == 200
        assert body["state"] == "closed" and body["role"] == role
        assert body["syncState"] == "synced"


async def test_a_stranger_stays_forbidden_in_a_dispute(
    gateway: Gateway, http: aiohttp.ClientSession, bridge_url: str, order: str
) -> None:
    await gateway.service.open_dispute(order, Participant(AGENT), service="support-tool")
    async with http.post(
        bridge_url + CHANNEL_PATH, json={"orderId": order}, headers=bearer(session_jwt("tom-2"))
    ) as response:
        assert response.status == 403
        assert await error_of(response) == "permission_denied"
