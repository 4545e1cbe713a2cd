"""The order's life as pure transitions: every move, every idempotent repeat, the events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway import lifecycle
from gateway.domain import (
    EventAction,
    InvalidArgumentError,
    OrderChannel,
    OrderState,
    Participant,
    Role,
    SyncState,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SUE = Participant("sue-1", "Sue Support")
TOM = Participant("tom-2")


def synced_order(
    state: OrderState = OrderState.OPEN, agents: tuple[Participant, ...] = ()
) -> OrderChannel:
    return OrderChannel(
        order_id="ord-1",
        channel_type="messaging",
        channel_id="order-ord-1",
        buyer=Participant("buyer-1"),
        seller=Participant("seller-1"),
        sync_state=SyncState.SYNCED,
        create_time=T0,
        state=state,
        agents=agents,
        version=3,
    )


def test_close_an_open_order_freezes_it_with_one_event() -> None:
    later = T0 + timedelta(minutes=5)
    change = lifecycle.close(synced_order(), now=later, service="order-service", reason="done")
    assert change is not None
    closed, events = change
    assert closed.state is OrderState.CLOSED and closed.frozen
    assert closed.sync_state is SyncState.PENDING and closed.version == 4
    assert closed.update_time == later and closed.create_time == T0
    assert [(e.action, e.service, e.reason) for e in events] == [
        (EventAction.CLOSED, "order-service", "done")
    ]


def test_closing_a_closed_order_changes_nothing() -> None:
    assert lifecycle.close(synced_order(OrderState.CLOSED), now=T0, service="s", reason="") is None


def test_closing_a_dispute_keeps_the_agents() -> None:
    change = lifecycle.close(
        synced_order(OrderState.DISPUTED, (SUE,)), now=T0, service="support-tool", reason=""
    )
    assert change is not None
    assert change[0].state is OrderState.CLOSED and change[0].agents == (SUE,)


@pytest.mark.parametrize("start", [OrderState.OPEN, OrderState.CLOSED])
def test_a_dispute_opens_from_open_or_closed(start: OrderState) -> None:
    change = lifecycle.open_dispute(
        synced_order(start), SUE, now=T0, service="support-tool", reason="broken"
    )
    assert change is not None
    disputed, events = change
    assert disputed.state is OrderState.DISPUTED and not disputed.frozen
    assert disputed.agents == (SUE,) and disputed.role_of("sue-1") is Role.SUPPORT
    assert [(e.action, e.agent_user_id, e.reason) for e in events] == [
        (EventAction.DISPUTE_OPENED, "sue-1", "broken")
    ]


def test_another_agent_joins_an_open_dispute() -> None:
    change = lifecycle.open_dispute(
        synced_order(OrderState.DISPUTED, (SUE,)), TOM, now=T0, service="support-tool", reason=""
    )
    assert change is not None
    assert change[0].agent_ids == ("sue-1", "tom-2")
    assert change[0].member_ids == ("buyer-1", "seller-1", "sue-1", "tom-2")
    assert [e.action for e in change[1]] == [EventAction.AGENT_ADDED]


def test_the_same_agent_again_changes_nothing() -> None:
    order = synced_order(OrderState.DISPUTED, (SUE,))
    assert lifecycle.open_dispute(order, SUE, now=T0, service="s", reason="") is None


def test_reopening_a_closed_dispute_keeps_each_agent_once() -> None:
    change = lifecycle.open_dispute(
        synced_order(OrderState.CLOSED, (SUE,)), SUE, now=T0, service="s", reason=""
    )
    assert change is not None
    assert change[0].agents == (SUE,) and change[0].state is OrderState.DISPUTED
    assert [e.action for e in change[1]] == [EventAction.DISPUTE_OPENED]


@pytest.mark.parametrize("user", ["buyer-1", "seller-1"])
def test_the_agent_cannot_be_buyer_or_seller(user: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        lifecycle.open_dispute(synced_order(), Participant(user), now=T0, service="s", reason="")
    assert caught.value.field == "agent.user_id"
