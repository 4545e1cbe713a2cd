"""The use cases on fake ports."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.chat import ChatBackendError
from gateway.domain import (
    InvalidArgumentError,
    NotParticipantError,
    OrderNotFoundError,
    Participant,
    ParticipantConflictError,
    Role,
    SyncState,
)
from gateway.outbox import ChannelSync, SyncPolicy
from gateway.service import ChatService
from gateway.tokens import StreamTokenSigner
from tests.helpers.clock import FakeClock
from tests.helpers.fakes import FakeChatBackend, FakeRegistry

SECRET = "unit-test-stream-secret-at-least-32-bytes-long"
BUYER = Participant("buyer-42", "Ana", "https://cdn.example.com/a.png")
SELLER = Participant("seller-7", "Sam")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(clock: FakeClock) -> FakeRegistry:
    return FakeRegistry(clock)


@pytest.fixture
def backend() -> FakeChatBackend:
    return FakeChatBackend()


@pytest.fixture
def service(registry: FakeRegistry, backend: FakeChatBackend, clock: FakeClock) -> ChatService:
    sync = ChannelSync(
        registry=registry,
        backend=backend,
        clock=clock,
        policy=SyncPolicy(backoff_base_s=0.001, attempt_timeout_s=0.5),
    )
    return ChatService(
        registry=registry,
        sync=sync,
        clock=clock,
        inline_sync_budget_s=0.05,
        signer=StreamTokenSigner(api_key="key", api_secret=SECRET, clock=clock),
    )


async def test_issue_token_default_ttl_is_24h(service: ChatService) -> None:
    token = service.issue_token("buyer-42")
    assert token.expire_time - token.issue_time == timedelta(hours=24, seconds=5)  # iat skew
    assert token.api_key == "key" and token.user_id == "buyer-42"


async def test_issue_token_rejects_bad_ttl(service: ChatService) -> None:
    with pytest.raises(InvalidArgumentError, match="^ttl: "):
        service.issue_token("buyer-42", timedelta(seconds=30))


async def test_ensure_creates_once_then_returns_existing(
    service: ChatService, backend: FakeChatBackend
) -> None:
    first, created = await service.ensure_order_channel("ord-1", BUYER, SELLER)
    again, created_again = await service.ensure_order_channel("ord-1", BUYER, SELLER)
    assert created and not created_again
    assert first.sync_state is SyncState.SYNCED and again.sync_state is SyncState.SYNCED
    assert first.cid == again.cid == "messaging:order-ord-1"
    assert backend.synced == ["ord-1"]  # the repeat of a synced order costs no backend call


async def test_conflict_changes_nothing(service: ChatService, registry: FakeRegistry) -> None:
    await service.ensure_order_channel("ord-1", BUYER, SELLER)
    before = dict(registry.rows)
    with pytest.raises(ParticipantConflictError):
        await service.ensure_order_channel("ord-1", BUYER, Participant("mallory"))
    assert registry.rows == before


async def test_buyer_equal_to_seller_is_invalid(
    service: ChatService, registry: FakeRegistry
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        await service.ensure_order_channel("ord-1", BUYER, Participant(BUYER.user_id))
    assert info.value.field == "seller.user_id"
    assert registry.rows == {}


async def test_backend_down_leaves_order_pending_and_recorded(
    service: ChatService, registry: FakeRegistry, backend: FakeChatBackend
) -> None:
    backend.fail_with = ChatBackendError("503", transient=True)
    channel, created = await service.ensure_order_channel("ord-2", BUYER, SELLER)
    assert created and channel.sync_state is SyncState.PENDING
    assert registry.rows["ord-2"].sync_state is SyncState.PENDING
    assert registry.failures("ord-2") >= 1
    assert backend.synced  # it did try


async def test_no_inline_attempt_when_deadline_is_nearly_gone(
    service: ChatService, registry: FakeRegistry, backend: FakeChatBackend
) -> None:
    channel, created = await service.ensure_order_channel(
        "ord-3", BUYER, SELLER, time_remaining_s=0.01
    )
    assert created and channel.sync_state is SyncState.PENDING
    assert backend.synced == []
    assert "ord-3" in registry.rows


@pytest.mark.parametrize(("user", "role"), [("buyer-42", Role.BUYER), ("seller-7", Role.SELLER)])
async def test_authorize_a_participant(service: ChatService, user: str, role: Role) -> None:
    await service.ensure_order_channel("ord-1", BUYER, SELLER)
    answer = await service.authorize_participant("ord-1", user)
    assert (answer.allowed, answer.role) == (True, role)


async def test_authorize_a_stranger(service: ChatService) -> None:
    await service.ensure_order_channel("ord-1", BUYER, SELLER)
    stranger = await service.authorize_participant("ord-1", "mallory")
    assert (stranger.allowed, stranger.role, stranger.channel) == (False, None, None)


async def test_authorize_on_an_unknown_order(service: ChatService) -> None:
    with pytest.raises(OrderNotFoundError):
        await service.authorize_participant("ord-404", "buyer-42")


async def test_open_order_channel_syncs_a_due_pending_order_first(
    service: ChatService, backend: FakeChatBackend, clock: FakeClock
) -> None:
    backend.fail_with = ChatBackendError("down", transient=True)
    await service.ensure_order_channel("ord-1", BUYER, SELLER)
    backend.fail_with = None
    clock.advance(60)  # past the failed attempt's backoff: due again
    channel, role = await service.open_order_channel("ord-1", "seller-7")
    assert role is Role.SELLER and channel.sync_state is SyncState.SYNCED


async def test_open_order_channel_respects_the_backoff(
    service: ChatService, backend: FakeChatBackend, clock: FakeClock
) -> None:
    backend.fail_with = ChatBackendError("down", transient=True)
    await service.ensure_order_channel("ord-1", BUYER, SELLER)
    attempts = len(backend.synced)
    backend.fail_with = None
    channel, _ = await service.open_order_channel("ord-1", "seller-7")  # not due yet
    assert channel.sync_state is SyncState.PENDING and len(backend.synced) == attempts


async def test_open_order_channel_refuses_a_stranger(service: ChatService) -> None:
    await service.ensure_order_channel("ord-1", BUYER, SELLER)
    with pytest.raises(NotParticipantError):
        await service.open_order_channel("ord-1", "mallory")
