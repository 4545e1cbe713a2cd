"""The HS256 session fast path against PyJWT: for any token, the same verdict (the claims,
or the same exception class) as ``jwt.decode`` with the bridge's options.

Tokens are generated valid, expired, not yet valid, with mutated headers, payloads and
signatures, other algorithms, ``none``, odd JSON and odd base64. Times stay clear of the
leeway's edges (a token that expires during the comparison is not a difference).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.bridge.hs256 import HS256Sessions

KEY = b"session-secret-for-the-differential-test-0123456789"
OTHER_KEY = b"another-secret-of-the-differential-test-9876543210"
LEEWAY = 5.0
NOW = int(time.time())
OFFSETS = [-(10**6), -3600, -60, -10, 10, 60, 3600, 10**6]
"""Seconds from now for exp/iat/nbf: never within the leeway's edges."""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(signing_input: str, key: bytes) -> str:
    return b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


HEADERS = [
    '{"alg":"HS256","typ":"JWT"}',
    '{"typ":"JWT","alg":"HS256"}',
    '{"alg":"HS256"}',
    '{"alg": "HS256", "kid": "k1"}',
    '{"alg":"HS256","kid":5}',
    '{"alg":"HS256","alg":"HS384"}',
    '{"alg":"HS384","alg":"HS256"}',
    '{"alg":"HS384","typ":"JWT"}',
    '{"alg":"HS512"}',
    '{"alg":"none"}',
    '{"alg":"RS256"}',
    '{"alg":"hs256"}',
    '{"alg":""}',
    '{"typ":"JWT"}',
    '{"alg":"HS256","crit":["b64"],"b64":false}',
    '{"alg":"HS256","crit":["exp"]}',
    '{"alg":"HS256","b64":true}',
    '["alg","HS256"]',
    "null",
    "not json",
]

times = st.sampled_from(OFFSETS).map(lambda offset: NOW + offset)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
claim_values = {
    "exp": times | times.map(float) | times.map(str) | json_values,
    "iat": times | times.map(float) | json_values,
    "nbf": times | json_values,
    "sub": st.sampled_from(["buyer-1", "seller-7", "", "ünï"]) | json_values,
    "iss": st.sampled_from(["tradetrust-login", "someone-else"]) | json_values,
    "aud": st.sampled_from(["", "chat", ["chat"], [], 0, None]) | json_values,
    "jti": st.sampled_from(["j-1"]) | json_values,
    "role": json_values,
}


@st.composite
def payloads(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["claims", "claims", "claims", "not an object", "not json"]))
    if kind == "not json":
        return draw(st.sampled_from(["{", "", "nul", '{"exp":1,}']))
    if kind == "not an object":
        return json.dumps(draw(json_values.filter(lambda v: not isinstance(v, dict))))
    claims: dict[str, Any] = {"exp": NOW + 3600, "sub": "buyer-1"}
    for name, values in claim_values.items():
        # Mostly one odd claim at a time: the interesting tokens are the almost-valid ones.
        choice = draw(st.sampled_from(["keep"] * 6 + ["drop", "set", "set"]))
        if choice == "drop":
            claims.pop(name, None)
        elif choice == "set":
            claims[name] = draw(values)
    return json.dumps(claims)


@st.composite
def tokens(draw: st.DrawFn) -> str:
    header = b64(draw(st.sampled_from(HEADERS[:4] * 4 + HEADERS)).encode())
    payload = b64(draw(payloads()).encode())
    signing_input = f"{header}.{payload}"
    signature = draw(st.sampled_from(["good", "good", "good", "other key", "empty", "junk"]))
    token = {
        "good": f"{signing_input}.{sign(signing_input, KEY)}",
        "other key": f"{signing_input}.{sign(signing_input, OTHER_KEY)}",
        "empty": f"{signing_input}.",
        "junk": f"{signing_input}.AAAA",
    }[signature]
    mutation = draw(
        st.sampled_from(["none", "none", "flip", "pad", "junk char", "drop dot", "extra dot"])
    )
    if mutation == "flip" and token:
        at = draw(st.integers(min_value=0, max_value=len(token) - 1))
        replacement = draw(st.sampled_from("AaZz09-_."))
        token = token[:at] + replacement + token[at + 1 :]
    elif mutation == "pad":
        part = draw(st.integers(min_value=0, max_value=2))
        pieces = token.split(".")
        if part < len(pieces):
            pieces[part] += "="
        token = ".".join(pieces)
    elif mutation == "junk char":
        at = draw(st.integers(min_value=0, max_value=len(token)))
        token = token[:at] + draw(st.sampled_from(["!", " ", "+", "/", "é"])) + token[at:]
    elif mutation == "drop dot":
        token = token.replace(".", "", 1)
    elif mutation == "extra dot":
        token = token + "." + token.rsplit(".", 1)[1]
    return token


def verdict_of(decode: Any, token: str) -> tuple[str, Any]:
    try:
        return ("accepted", decode(token))
    except jwt.InvalidTokenError as exc:
        return ("refused", type(exc))


@pytest.mark.parametrize("issuer", [None, "tradetrust-login"])
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token=tokens())
def test_the_fast_path_agrees_with_pyjwt(issuer: str | None, token: str) -> None:
    fast = HS256Sessions(KEY, issuer=issuer, audience=None, leeway=LEEWAY)

    def pyjwt(t: str) -> Any:
        return jwt.decode(
            t,
            KEY,
            algorithms=["HS256"],
            issuer=issuer,
            audience=None,
            leeway=LEEWAY,
            options={"require": ["exp", "sub"]},
        )

    assert verdict_of(fast.decode, token) == verdict_of(pyjwt, token)


def test_a_plain_session_never_reaches_pyjwt(monkeypatch: pytest.MonkeyPatch) -> None:
    token = jwt.encode({"sub": "buyer-1", "exp": NOW + 3600, "iat": NOW}, KEY, algorithm="HS256")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the fast path handed a plain session to PyJWT")

    monkeypatch.setattr(jwt, "decode", refuse)
    claims = HS256Sessions(KEY, issuer=None, audience=None, leeway=LEEWAY).decode(token)
    assert claims == {"sub": "buyer-1", "exp": NOW + 3600, "iat": NOW}


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "buyer-1", "exp": NOW - 3600},  # expired
        {"sub": "buyer-1", "exp": NOW + 3600, "nbf": NOW + 3600},  # not yet valid
        {"sub": "buyer-1", "exp": NOW + 3600, "aud": "chat"},  # an audience nobody asked for
        {"sub": 7, "exp": NOW + 3600},  # not a string
    ],
)
def test_every_refusal_is_pyjwt_s_own(
    monkeypatch: pytest.MonkeyPatch, claims: dict[str, Any]
) -> None:
    token = jwt.encode(claims, KEY, algorithm="HS256")
    asked: list[str] = []
    real = jwt.decode

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append("pyjwt")
        return real(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", spy)
    with pytest.raises(jwt.InvalidTokenError):
        HS256Sessions(KEY, issuer=None, audience=None, leeway=LEEWAY).decode(token)
    assert asked == ["pyjwt"]
