"""Stream user-token signing, checked by decoding with PyJWT."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from gateway.tokens import StreamTokenSigner
from tests.helpers.clock import FakeClock

SECRET = "unit-test-stream-secret-at-least-32-bytes-long"


@pytest.mark.parametrize("ttl_s", [60, 3600, 86_400])
def test_claims_and_lifetime(ttl_s: int) -> None:
    clock = FakeClock()
    signer = StreamTokenSigner(api_key="k", api_secret=SECRET, clock=clock)
    issued = signer.sign("buyer-42", timedelta(seconds=ttl_s))
    claims = jwt.decode(issued.token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert set(claims) == {"user_id", "iat", "exp"}
    assert claims["user_id"] == "buyer-42"
    second = int(clock.now.timestamp())
    assert (claims["iat"], claims["exp"]) == (second - 5, second + ttl_s)  # iat 5 s back
    assert issued.expire_time.timestamp() == claims["exp"]
    assert jwt.get_unverified_header(issued.token)["alg"] == "HS256"


def test_wrong_secret_does_not_verify() -> None:
    signer = StreamTokenSigner(api_key="k", api_secret=SECRET)
    token = signer.sign("u", timedelta(minutes=5)).token
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-that-is-also-32-bytes-long!", algorithms=["HS256"])


def test_sub_second_clock_is_truncated() -> None:
    clock = FakeClock()
    clock.advance(0.75)
    issued = StreamTokenSigner(api_key="k", api_secret=SECRET, clock=clock).sign(
        "u", timedelta(seconds=120)
    )
    claims = jwt.decode(issued.token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["exp"] - claims["iat"] == 120 + 5  # iat 5 s back


def test_byte_identical_to_pyjwt() -> None:
    clock = FakeClock()
    issued = StreamTokenSigner(api_key="k", api_secret=SECRET, clock=clock).sign(
        "ana@tradetrust", timedelta(hours=1)
    )
    second = int(clock.now.timestamp())
    reference = jwt.encode(
        {"user_id": "ana@tradetrust", "iat": second - 5, "exp": second + 3600},
        SECRET,
        algorithm="HS256",
    )
    assert issued.token == reference


def test_reuse_only_within_the_same_second() -> None:
    clock = FakeClock()
    signer = StreamTokenSigner(api_key="k", api_secret=SECRET, clock=clock)
    first = signer.sign("u", timedelta(minutes=5))
    assert signer.sign("u", timedelta(minutes=5)) is first
    assert signer.sign("u", timedelta(minutes=6)).token != first.token
    assert signer.sign("v", timedelta(minutes=5)).token != first.token
    clock.advance(1)
    later = signer.sign("u", timedelta(minutes=5))
    assert later.token != first.token
    assert later.expire_time - first.expire_time == timedelta(seconds=1)


@pytest.mark.parametrize("skew", [0, 1, 5, 30])
def test_iat_lies_the_configured_skew_in_the_past(skew: int) -> None:
    clock = FakeClock()
    clock.advance(0.4)
    signer = StreamTokenSigner(api_key="k", api_secret=SECRET, iat_skew_s=skew, clock=clock)
    claims = jwt.decode(
        signer.sign("u", timedelta(minutes=5)).token,
        SECRET,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iat"] == int(clock.now.timestamp()) - skew
    assert claims["exp"] == int(clock.now.timestamp()) + 300
