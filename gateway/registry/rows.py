"""The row shapes, shared by the SQLite and PostgreSQL registries.

They differ only in placeholders (``?`` / ``%s``) and how a moment is stored (epoch
seconds / ``timestamptz``), so the column lists, the values of a written row and the
mapping of a read row live here once. A moment read back is turned into an aware UTC
datetime by the registry's ``moment_in`` function; one to be written by ``moment_out``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gateway.domain import (
    EventAction,
    OrderChannel,
    OrderEvent,
    OrderState,
    Participant,
    Revocation,
    SyncState,
)

MomentIn = Callable[[Any], datetime]
MomentOut = Callable[[datetime], Any]

SELECT_COLUMNS = (
    "order_id, channel_type, channel_id, buyer_user_id, buyer_name, buyer_image, "
    "seller_user_id, seller_name, seller_image, sync_state, create_time, failed_attempts, "
    "state, agents, update_time, version"
)
"""What every order read selects, in the order :func:`channel_from_row` expects."""
FAILED_ATTEMPTS = 11
"""Position of ``failed_attempts`` in a read row."""

INSERT_COLUMNS = (
    "order_id, channel_type, channel_id, buyer_user_id, buyer_name, buyer_image, "
    "seller_user_id, seller_name, seller_image, sync_state, create_time, next_attempt_at, "
    "claimed_until, state, agents, update_time, version"
)
"""The columns of a new order row, in the order of :func:`insert_values`."""

EVENT_COLUMNS = "time, action, service, reason, agent_user_id"
"""What an event read selects (and an insert writes after ``order_id``)."""

REVOCATION_COLUMNS = "user_id, revoke_time, sync_state, failed_attempts"
"""What every revocation read selects."""


NO_AGENTS = "[]"
"""The ``agents`` column of an order without support agents."""
_SYNC_STATES = {state.value: state for state in SyncState}
_ORDER_STATES = {state.value: state for state in OrderState}


def agents_json(agents: Sequence[Participant]) -> str:
    """The ``agents`` column: a JSON list of ``[user_id, display_name, image_url]``."""
    return json.dumps([[a.user_id, a.display_name, a.image_url] for a in agents])


def insert_values(
    channel: OrderChannel, now: datetime, claimed_until: datetime, moment: MomentOut
) -> tuple[Any, ...]:
    """The values of ``channel``'s new row: due now, claimed until ``claimed_until``."""
    return (
        channel.order_id,
        channel.channel_type,
        channel.channel_id,
        channel.buyer.user_id,
        channel.buyer.display_name,
        channel.buyer.image_url,
        channel.seller.user_id,
        channel.seller.display_name,
        channel.seller.image_url,
        channel.sync_state.value,
        moment(channel.create_time),
        moment(now),
        moment(claimed_until),
        channel.state.value,
        agents_json(channel.agents),
        moment(channel.update_time or channel.create_time),
        channel.version,
    )


UPDATE_SET = (
    "state = {p}, agents = {p}, update_time = {p}, version = {p}, sync_state = 'pending', "
    "next_attempt_at = {p}, claimed_until = {p}, failed_attempts = 0, last_error = NULL"
)
"""The assignments of a changed order (format ``p`` with the placeholder)."""


def update_values(
    channel: OrderChannel, now: datetime, claimed_until: datetime, moment: MomentOut
) -> tuple[Any, ...]:
    """The values for :data:`UPDATE_SET`: the change is due now, claimed until then."""
    return (
        channel.state.value,
        agents_json(channel.agents),
        moment(channel.update_time or now),
        channel.version,
        moment(now),
        moment(claimed_until),
    )


def channel_from_row(row: Sequence[Any], moment: MomentIn) -> OrderChannel:
    """The channel of a row read with :data:`SELECT_COLUMNS`.

    Every read of an order (each AuthorizeParticipant, each repeat) pays for this, so the
    enums come from dictionaries, an order without agents skips the JSON parser, and the
    channel is built with positional arguments, in :class:`OrderChannel`'s field order
    (half the cost of keywords; a value that is not one of the enums still raises
    ``ValueError``)."""
    return OrderChannel(
        row[0],  # order_id
        row[1],  # channel_type
        row[2],  # channel_id
        Participant(row[3], row[4], row[5]),  # buyer
        Participant(row[6], row[7], row[8]),  # seller
        _SYNC_STATES.get(row[9]) or SyncState(row[9]),  # sync_state
        moment(row[10]),  # create_time
        _ORDER_STATES.get(row[12]) or OrderState(row[12]),  # state
        () if row[13] == NO_AGENTS else tuple(Participant(*a) for a in json.loads(row[13])),
        moment(row[14]),  # update_time
        row[15],  # version
    )


def event_values(order_id: str, event: OrderEvent, moment: MomentOut) -> tuple[Any, ...]:
    """``order_id`` and the :data:`EVENT_COLUMNS` of an event to insert."""
    return (
        order_id,
        moment(event.time),
        event.action.value,
        event.service,
        event.reason,
        event.agent_user_id,
    )


def event_from_row(row: Sequence[Any], moment: MomentIn) -> OrderEvent:
    """The event of a row read with :data:`EVENT_COLUMNS`."""
    return OrderEvent(moment(row[0]), EventAction(row[1]), row[2], row[3], row[4])


def revocation_from_row(row: Sequence[Any], moment: MomentIn) -> Revocation:
    """The revocation of a row read with :data:`REVOCATION_COLUMNS`."""
    return Revocation(row[0], moment(row[1]), SyncState(row[2]))
