"""The ``orders`` row shape, shared by the SQLite and PostgreSQL registries.

They differ only in placeholders (``?`` / ``%s``) and how a moment is stored (epoch
seconds / ``timestamptz``), so the column lists, the values of a new row and the mapping
of a read row live here once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gateway.domain import OrderChannel, Participant, SyncState

SELECT_COLUMNS = (
    "order_id, channel_type, channel_id, buyer_user_id, buyer_name, buyer_image, "
    "seller_user_id, seller_name, seller_image, sync_state, create_time, failed_attempts"
)
"""What every read selects, in the order :func:`channel_from_row` expects."""
CREATE_TIME, FAILED_ATTEMPTS = 10, 11
"""Positions of ``create_time`` and ``failed_attempts`` in a read row."""

INSERT_COLUMNS = (
    "order_id, channel_type, channel_id, buyer_user_id, buyer_name, buyer_image, "
    "seller_user_id, seller_name, seller_image, sync_state, create_time, next_attempt_at, "
    "claimed_until"
)
"""The columns of a new row, in the order of :func:`insert_values`."""


def insert_values(
    channel: OrderChannel,
    now: datetime,
    claimed_until: datetime,
    moment: Callable[[datetime], Any],
) -> tuple[Any, ...]:
    """The values of ``channel``'s new row: due now, claimed until ``claimed_until``;
    ``moment`` turns a datetime into what the database stores."""
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
    )


def channel_from_row(row: Sequence[Any], create_time: datetime) -> OrderChannel:
    """The channel of a row read with :data:`SELECT_COLUMNS` (``create_time``: the row's
    ``create_time`` as an aware UTC datetime)."""
    return OrderChannel(
        order_id=row[0],
        channel_type=row[1],
        channel_id=row[2],
        buyer=Participant(row[3], row[4], row[5]),
        seller=Participant(row[6], row[7], row[8]),
        sync_state=SyncState(row[9]),
        create_time=create_time,
    )
