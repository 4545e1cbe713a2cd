"""A read row becomes the channel that was written, whatever its state and agents."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain import OrderChannel, OrderState, Participant, SyncState
from gateway.registry import rows

_text = st.text(max_size=12)
_people = st.builds(Participant, _text, _text, _text)
_moments = st.floats(min_value=0, max_value=4e9, allow_nan=False).map(
    lambda s: datetime.fromtimestamp(s, UTC)
)


def _row(channel: OrderChannel, failed_attempts: int = 0) -> tuple[object, ...]:
    """The row as the SQLite registry selects it (moments as epoch seconds)."""
    assert channel.update_time is not None
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
        channel.create_time.timestamp(),
        failed_attempts,
        channel.state.value,
        rows.agents_json(channel.agents),
        channel.update_time.timestamp(),
        channel.version,
    )


def _moment(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@given(
    channel=st.builds(
        OrderChannel,
        order_id=_text,
        channel_type=_text,
        channel_id=_text,
        buyer=_people,
        seller=_people,
        sync_state=st.sampled_from(SyncState),
        create_time=_moments,
        state=st.sampled_from(OrderState),
        agents=st.lists(_people, max_size=3).map(tuple),
        update_time=_moments,
        version=st.integers(min_value=1, max_value=2**31),
    )
)
def test_a_row_reads_back_as_the_channel_written(channel: OrderChannel) -> None:
    assert rows.channel_from_row(_row(channel), _moment) == channel


@pytest.mark.parametrize("column, value", [(9, "lost"), (12, "archived")])
def test_a_state_outside_the_enums_is_refused(column: int, value: str) -> None:
    channel = OrderChannel(
        "o-1",
        "messaging",
        "order-o-1",
        Participant("b"),
        Participant("s"),
        SyncState.SYNCED,
        _moment(1.0),
    )
    row = list(_row(channel))
    row[column] = value
    with pytest.raises(ValueError):
        rows.channel_from_row(row, _moment)
