"""An order channel's life, as pure functions: OPEN -> CLOSED; OPEN or CLOSED -> DISPUTED
(and more agents may join an open dispute); DISPUTED -> CLOSED.

Each transition takes the channel as recorded and returns the changed channel with the
events to record, or ``None`` when the change already holds (a repeat changes nothing and
adds no event). The registry runs them inside its write transaction, so a refusal leaves
nothing written. Every change makes the channel ``PENDING`` again, one version newer:
Stream must be brought to match it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from gateway.domain import (
    EventAction,
    InvalidArgumentError,
    OrderChannel,
    OrderEvent,
    OrderState,
    Participant,
    SyncState,
)

Change = tuple[OrderChannel, tuple[OrderEvent, ...]]
"""The channel after a transition and the events it adds to the history."""


def _changed(
    channel: OrderChannel, now: datetime, state: OrderState, agents: tuple[Participant, ...]
) -> OrderChannel:
    return replace(
        channel,
        state=state,
        agents=agents,
        sync_state=SyncState.PENDING,
        update_time=now,
        version=channel.version + 1,
    )


def close(channel: OrderChannel, *, now: datetime, service: str, reason: str) -> Change | None:
    """The order ended: freeze its chat (agents stay members and read on)."""
    if channel.state is OrderState.CLOSED:
        return None
    event = OrderEvent(now, EventAction.CLOSED, service, reason)
    return _changed(channel, now, OrderState.CLOSED, channel.agents), (event,)


def open_dispute(
    channel: OrderChannel, agent: Participant, *, now: datetime, service: str, reason: str
) -> Change | None:
    """A support agent joins the order's chat, which is (again) open for posting.

    Raises:
        InvalidArgumentError: the agent is the order's buyer or seller.
    """
    if agent.user_id in (channel.buyer.user_id, channel.seller.user_id):
        raise InvalidArgumentError("agent.user_id", "must differ from the buyer and the seller")
    known = agent.user_id in channel.agent_ids
    if known and channel.state is OrderState.DISPUTED:
        return None
    agents = channel.agents if known else (*channel.agents, agent)
    if channel.state is OrderState.DISPUTED:
        event = OrderEvent(now, EventAction.AGENT_ADDED, service, reason, agent.user_id)
    else:
        event = OrderEvent(now, EventAction.DISPUTE_OPENED, service, reason, agent.user_id)
    return _changed(channel, now, OrderState.DISPUTED, agents), (event,)
