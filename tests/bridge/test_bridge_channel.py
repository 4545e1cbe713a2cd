"""``/api/chat/stream/channel`` over real HTTP: 200, 400, 401, 403, 404, 413, 415, 503, 500."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import aiohttp
import pytest

from gateway.admission import Admission
from gateway.app import Gateway
from gateway.bridge import BridgeEdge, build_bridge_app
from gateway.chat import ChatBackendError
from gateway.domain import OrderChannel, Participant, UnavailableError
from gateway.metrics import GatewayMetrics
from gateway.outbox import ChannelSync, SyncPolicy
from gateway.registry import OrderRegistry, PendingStats
from gateway.service import ChatService
from gateway.tokens import StreamTokenSigner
from tests.helpers.bridge import (
    BUYER,
    CHANNEL_PATH,
    SELLER,
    bearer,
    error_of,
    session_jwt,
)
from tests.helpers.fakes import FakeChatBackend


async def post_channel(
    http: aiohttp.ClientSession, base: str, user: str, body: Any
) -> aiohttp.ClientResponse:
    response = await http.post(base + CHANNEL_PATH, json=body, headers=bearer(session_jwt(user)))
    await response.read()
    return response


@pytest.mark.parametrize(("user", "role"), [(BUYER, "buyer"), (SELLER, "seller")])
async def test_participant_gets_channel_and_role(
    http: aiohttp.ClientSession, bridge_url: str, order: str, user: str, role: str
) -> None:
    response = await post_channel(http, bridge_url, user, {"orderId": order})
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.json() == {
        "orderId": order,
        "channelType": "messaging",
        "channelId": f"order-{order}",
        "cid": f"messaging:order-{order}",
        "role": role,
        "members": [BUYER, SELLER],
        "syncState": "synced",
        "state": "open",
    }


async def test_non_participant_is_403(
    http: aiohttp.ClientSession, bridge_url: str, order: str
) -> None:
    response = await post_channel(http, bridge_url, "mallory", {"orderId": order})
    assert response.status == 403
    assert await error_of(response) == "permission_denied"


async def test_unknown_order_is_404(http: aiohttp.ClientSession, bridge_url: str) -> None:
    response = await post_channel(http, bridge_url, BUYER, {"orderId": "ord-unknown"})
    assert response.status == 404
    assert await error_of(response) == "not_found"


async def test_no_session_is_401(http: aiohttp.ClientSession, bridge_url: str, order: str) -> None:
    async with http.post(bridge_url + CHANNEL_PATH, json={"orderId": order}) as response:
        assert response.status == 401
        assert await error_of(response) == "unauthenticated"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "orderId"),
        ({"orderId": ""}, "orderId"),
        ({"orderId": "bad id!"}, "orderId"),
        ({"orderId": "o" * 129}, "orderId"),
        ({"orderId": 42}, "orderId"),
        ({"orderId": "ord-1", "userId": "mallory"}, "userId"),
        (["ord-1"], "body"),
        (None, "body"),
    ],
)
async def test_bad_body_is_400_naming_the_field(
    http: aiohttp.ClientSession, bridge_url: str, order: str, body: Any, field: str
) -> None:
    response = await post_channel(http, bridge_url, BUYER, body)
    assert response.status == 400
    assert await error_of(response) == "invalid_argument"
    assert (await response.json())["error"]["message"].startswith(field)


async def test_missing_body_is_400(http: aiohttp.ClientSession, bridge_url: str) -> None:
    async with http.post(bridge_url + CHANNEL_PATH, headers=bearer(session_jwt(BUYER))) as resp:
        assert resp.status == 400
        assert await error_of(resp) == "invalid_argument"


async def test_form_body_is_415(http: aiohttp.ClientSession, bridge_url: str) -> None:
    async with http.post(
        bridge_url + CHANNEL_PATH, data={"orderId": "ord-1"}, headers=bearer(session_jwt(BUYER))
    ) as response:
        assert response.status == 415
        assert await error_of(response) == "unsupported_media_type"


async def test_large_body_is_413(http: aiohttp.ClientSession, bridge_url: str) -> None:
    response = await post_channel(http, bridge_url, BUYER, {"orderId": "x" * 17_000})
    assert response.status == 413
    assert await error_of(response) == "payload_too_large"


async def test_get_is_405(http: aiohttp.ClientSession, bridge_url: str) -> None:
    async with http.get(bridge_url + CHANNEL_PATH, headers=bearer(session_jwt(BUYER))) as resp:
        assert resp.status == 405
        assert await error_of(resp) == "method_not_allowed"
        assert resp.headers["Allow"] == "POST" or "POST" in resp.headers["Allow"]


# -- a pending channel is synced first; registry outages ---------------------------------


def down_backend() -> FakeChatBackend:
    """A chat backend that is down until its ``fail_with`` is cleared."""
    return FakeChatBackend(fail_with=ChatBackendError("backend is down", transient=False))


class BrokenRegistry:
    """Delegates to a real registry, but reads fail the way it is told."""

    def __init__(self, inner: OrderRegistry, error: Exception) -> None:
        self._inner = inner
        self.error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get(self, order_id: str) -> OrderChannel | None:
        raise self.error

    async def check(self) -> None:
        raise self.error

    async def pending_stats(self) -> PendingStats:
        raise self.error


def broken(inner: OrderRegistry, error: Exception) -> OrderRegistry:
    """``inner`` whose reads raise ``error``."""
    return cast(OrderRegistry, BrokenRegistry(inner, error))


@asynccontextmanager
async def _serve(
    gateway: Gateway, registry: OrderRegistry, backend: Any
) -> AsyncIterator[tuple[str, ChatService]]:
    """A second bridge on loopback over ``registry`` and ``backend`` (same settings)."""
    sync = ChannelSync(registry=registry, backend=backend, policy=SyncPolicy(backoff_cap_s=0.05))
    service = ChatService(
        registry=registry,
        sync=sync,
        signer=StreamTokenSigner(api_key="k", api_secret="s" * 32),
        inline_sync_budget_s=0.2,
    )
    settings = gateway.settings
    app = build_bridge_app(
        service=service,
        registry=registry,
        settings=settings.bridge,
        tokens=settings.tokens,
        metrics=GatewayMetrics(),
        admission=Admission(max_concurrent_rpcs=10),
    )
    edge = BridgeEdge(app, "127.0.0.1:0")
    await edge.start()
    try:
        yield f"http://127.0.0.1:{edge.port}", service
    finally:
        await edge.stop()


async def test_a_due_pending_channel_is_synced_before_answering(
    http: aiohttp.ClientSession, gateway: Gateway
) -> None:
    backend = down_backend()
    async with _serve(gateway, gateway.registry, backend) as (base, service):
        channel, _ = await service.ensure_order_channel(
            "ord-pending", Participant(BUYER), Participant(SELLER)
        )
        assert channel.sync_state.value == "pending"
        # Stream still down: the participant gets the channel, honestly pending.
        response = await post_channel(http, base, BUYER, {"orderId": "ord-pending"})
        assert (response.status, (await response.json())["syncState"]) == (200, "pending")
        backend.fail_with = None
        calls = len(backend.synced)
        await asyncio.sleep(0.1)  # past the failed attempts' backoff (capped at 0.05 s here)
        response = await post_channel(http, base, SELLER, {"orderId": "ord-pending"})
        assert response.status == 200
        assert (await response.json())["syncState"] == "synced"
        assert len(backend.synced) == calls + 1
    stored = await gateway.registry.get("ord-pending")
    assert stored is not None and stored.sync_state.value == "synced"


async def test_registry_outage_is_503(http: aiohttp.ClientSession, gateway: Gateway) -> None:
    registry = broken(gateway.registry, UnavailableError("order registry is unavailable"))
    async with _serve(gateway, registry, down_backend()) as (base, _):
        response = await post_channel(http, base, BUYER, {"orderId": "ord-1"})
        assert response.status == 503
        assert await error_of(response) == "unavailable"
        async with http.get(base + "/readyz") as ready:
            assert ready.status == 503
            assert await error_of(ready) == "unavailable"


async def test_unexpected_error_is_500_logged_not_leaked(
    http: aiohttp.ClientSession, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    registry = broken(gateway.registry, RuntimeError("secret-internal-detail"))
    async with _serve(gateway, registry, down_backend()) as (base, _):
        with caplog.at_level(logging.ERROR, logger="gateway.bridge.errors"):
            response = await post_channel(http, base, BUYER, {"orderId": "ord-1"})
        assert response.status == 500
        assert await error_of(response) == "internal"
        assert "secret-internal-detail" not in await response.text()
    assert any(
        r.exc_info and "secret-internal-detail" in str(r.exc_info[1]) for r in caplog.records
    )
