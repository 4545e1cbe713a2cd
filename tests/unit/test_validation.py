"""Field validation: every rejection names its field; hostile input is refused."""

from __future__ import annotations

import unicodedata
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import validation
from gateway.domain import InvalidArgumentError, Participant

HOSTILE_IDS = [
    "",  # empty
    "a" * 129,  # too long
    "x" * 100_000,  # oversized
    "ord\x00er",  # NUL
    "ord\ner",  # newline
    "ord\u202eer",  # bidi override
    "ord\u200ber",  # zero-width space
    "оrder",  # Cyrillic 'о' look-alike
    "ｏrder",  # full-width look-alike
    "1' OR '1'='1",  # SQL-looking
    "1; DROP TABLE orders; --",
    "../../etc/passwd",
    "order:1",  # cid separator
    "order id",  # space
    "🙂",
]


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_hostile_order_ids_are_rejected(value: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        validation.order_id(value)
    assert info.value.field == "order_id"


@pytest.mark.parametrize("value", [*HOSTILE_IDS, "a@b!"])
def test_hostile_user_ids_are_rejected(value: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        validation.user_id(value, "buyer.user_id")
    assert info.value.field == "buyer.user_id"
    assert str(info.value).startswith("buyer.user_id: ")


@pytest.mark.parametrize("value", ["u", "buyer-42", "ana@tradetrust", "A_b-9", "x" * 128])
def test_valid_user_ids(value: str) -> None:
    assert validation.user_id(value) == value


def test_order_ids_refuse_at_sign() -> None:
    with pytest.raises(InvalidArgumentError):
        validation.order_id("a@b")


@pytest.mark.parametrize("name", ["Ana", "Ana Buyer", "Zoë Ω 李", "x" * 100, ""])
def test_valid_display_names(name: str) -> None:
    assert validation.display_name(name, "buyer.display_name") == name


@pytest.mark.parametrize(
    "name", ["x" * 101, "Ana\x00", "Ana\nB", "Ana\u202e", " Ana", "Ana ", "\u200b"]
)
def test_bad_display_names(name: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        validation.display_name(name, "seller.display_name")
    assert info.value.field == "seller.display_name"


@given(st.text(max_size=100))
def test_display_names_are_refused_exactly_for_non_text_characters(name: str) -> None:
    # The printable-ASCII shortcut must decide as the per-character categories do.
    not_text = [c for c in name if unicodedata.category(c) in {"Cc", "Cf", "Cs", "Co", "Cn"}]
    if not_text or name.strip() != name:
        with pytest.raises(InvalidArgumentError):
            validation.display_name(name, "buyer.display_name")
    else:
        assert validation.display_name(name, "buyer.display_name") == name


@pytest.mark.parametrize(
    "url", ["", "https://cdn.example.com/a.png", "http://127.0.0.1:8080/x?y=1#z"]
)
def test_valid_image_urls(url: str) -> None:
    assert validation.image_url(url, "buyer.image_url") == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "ftp://example.com/a.png",
        "//example.com/a.png",
        "/relative.png",
        "https://",
        "https://user:pw@example.com/a.png",
        "https://exa mple.com/a.png",
        "https://example.com/\x00",
        "https://ехample.com/a.png",  # Cyrillic 'х'
        "https://example.com:99999/",
        "https://example.com/" + "a" * 2100,
    ],
)
def test_bad_image_urls(url: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        validation.image_url(url, "buyer.image_url")
    assert info.value.field == "buyer.image_url"


def test_participant_names_the_nested_field() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        validation.participant(Participant("ok", "fine", "nope"), "seller")
    assert info.value.field == "seller.image_url"


def ttl(value: timedelta | None) -> timedelta:
    return validation.token_ttl(
        value,
        default=timedelta(hours=24),
        minimum=timedelta(seconds=60),
        maximum=timedelta(hours=24),
    )


def test_ttl_default_and_bounds() -> None:
    assert ttl(None) == timedelta(hours=24)
    assert ttl(timedelta(seconds=60)) == timedelta(seconds=60)
    assert ttl(timedelta(hours=24)) == timedelta(hours=24)
    for bad in (timedelta(seconds=59), timedelta(hours=24, seconds=1), timedelta(seconds=-5)):
        with pytest.raises(InvalidArgumentError) as info:
            ttl(bad)
        assert info.value.field == "ttl"


@given(st.text(max_size=300))
def test_user_id_accepts_exactly_the_documented_alphabet(value: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@_-")
    expected_ok = 1 <= len(value) <= 128 and set(value) <= allowed
    try:
        validation.user_id(value)
    except InvalidArgumentError:
        assert not expected_ok
    else:
        assert expected_ok
