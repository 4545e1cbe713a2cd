"""Order id -> Stream channel id mapping."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from gateway.channels import MAX_CHANNEL_ID_LENGTH, channel_id_for

ORDER_IDS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
    min_size=1,
    max_size=128,
)
STREAM_CHANNEL_ID = re.compile(r"[A-Za-z0-9!_-]{1,64}")


def test_short_ids_stay_readable() -> None:
    assert channel_id_for("ord-1001") == "order-ord-1001"
    assert channel_id_for("x" * 58) == "order-" + "x" * 58


def test_long_ids_are_hashed_within_stream_limit() -> None:
    long_id = "x" * 59
    mapped = channel_id_for(long_id)
    assert mapped.startswith("orderh-")
    assert len(mapped) <= MAX_CHANNEL_ID_LENGTH
    assert mapped != channel_id_for("x" * 60)


@given(ORDER_IDS)
def test_every_valid_order_id_maps_to_a_valid_stream_id(order_id: str) -> None:
    assert STREAM_CHANNEL_ID.fullmatch(channel_id_for(order_id))


@given(ORDER_IDS, ORDER_IDS)
def test_mapping_is_injective(a: str, b: str) -> None:
    if a != b:
        assert channel_id_for(a) != channel_id_for(b)


def test_readable_id_cannot_equal_a_hashed_one() -> None:
    # An order id that *looks* like a hash output still maps under the readable prefix.
    hashed = channel_id_for("y" * 100)
    sneaky = hashed.removeprefix("orderh-")
    assert channel_id_for("h-" + sneaky[:50]) != hashed
