"""Session JWT authentication over real HTTP: the good paths and the attack list (all 401)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.config import DEV_SESSION_SECRET
from tests.helpers.bridge import (
    BUYER,
    TOKEN_PATH,
    bearer,
    error_of,
    forged_jwt,
    session_claims,
    session_jwt,
)
from tests.helpers.gateways import GatewayFactory

OTHER_SECRET = "another-secret-that-is-at-least-32-bytes-long"


async def get_token(
    http: aiohttp.ClientSession, base: str, headers: dict[str, str]
) -> tuple[int, Any]:
    async with http.get(base + TOKEN_PATH, headers=headers) as response:
        if response.status == 200:
            return 200, await response.json()
        code = await error_of(response)
        if response.status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        return response.status, code


async def test_bearer_session_names_the_user(http: aiohttp.ClientSession, bridge_url: str) -> None:
    status, body = await get_token(http, bridge_url, bearer(session_jwt(BUYER)))
    assert status == 200
    assert body["userId"] == BUYER


async def test_cookie_session_names_the_user(http: aiohttp.ClientSession, bridge_url: str) -> None:
    status, body = await get_token(
        http, bridge_url, {"Cookie": f"tt_session={session_jwt('cookie-user')}"}
    )
    assert status == 200
    assert body["userId"] == "cookie-user"


async def test_bearer_header_wins_over_cookie(http: aiohttp.ClientSession, bridge_url: str) -> None:
    headers = {
        **bearer(session_jwt("header-user")),
        "Cookie": f"tt_session={session_jwt('cookie-user')}",
    }
    status, body = await get_token(http, bridge_url, headers)
    assert (status, body["userId"]) == (200, "header-user")


async def test_user_id_comes_only_from_the_session(
    http: aiohttp.ClientSession, bridge_url: str
) -> None:
    url = f"{bridge_url}{TOKEN_PATH}?user_id=mallory&userId=mallory&sub=mallory"
    async with http.get(url, headers=bearer(session_jwt(BUYER))) as response:
        assert response.status == 200
        assert (await response.json())["userId"] == BUYER


def _hs_attacks() -> list[tuple[str, dict[str, str]]]:
    claims = session_claims(BUYER)
    valid = session_jwt(BUYER)
    head, payload, signature = valid.split(".")
    tampered_payload = forged_jwt(
        {"alg": "HS256", "typ": "JWT"}, session_claims("mallory"), None
    ).split(".")[1]
    return [
        ("no session at all", {}),
        ("empty bearer", {"Authorization": "Bearer "}),
        ("basic scheme", {"Authorization": "Basic YnV5ZXItMTpwdw=="}),
        ("not a jwt", bearer("not-a-jwt")),
        ("two segments", bearer(f"{head}.{payload}")),
        ("garbage base64", bearer("e30.!!!.???")),
        ("alg none", bearer(forged_jwt({"alg": "none", "typ": "JWT"}, claims, None))),
        ("alg None", bearer(forged_jwt({"alg": "None"}, claims, None))),
        ("alg none with signature", bearer(forged_jwt({"alg": "none"}, claims, b"x" * 32))),
        ("wrong secret", bearer(session_jwt(BUYER, key=OTHER_SECRET))),
        ("tampered payload", bearer(f"{head}.{tampered_payload}.{signature}")),
        ("stripped signature", bearer(f"{head}.{payload}.")),
        (
            "HS512 with the right secret",
            bearer(forged_jwt({"alg": "HS512"}, claims, DEV_SESSION_SECRET.encode(), "sha512")),
        ),
        ("expired", bearer(session_jwt(BUYER, exp_in=-60))),
        ("not yet valid", bearer(session_jwt(BUYER, nbf=int(claims["iat"]) + 600))),
        ("no exp", bearer(session_jwt(BUYER, exp_in=None))),
        ("no sub", bearer(session_jwt(None))),
        ("sub not a string", bearer(session_jwt(12345))),
        ("sub not a valid user id", bearer(session_jwt("bad user/id"))),
        ("sub too long", bearer(session_jwt("u" * 129))),
        ("audience when none is expected", bearer(session_jwt(BUYER, aud="other-app"))),
        ("bad cookie", {"Cookie": "tt_session=not-a-jwt"}),
        ("expired cookie", {"Cookie": f"tt_session={session_jwt(BUYER, exp_in=-60)}"}),
        ("other cookie name", {"Cookie": f"session={session_jwt(BUYER)}"}),
        ("oversized token", bearer("a" * 8000)),
    ]


@pytest.mark.parametrize(("case", "headers"), _hs_attacks(), ids=[c for c, _ in _hs_attacks()])
async def test_hs256_attacks_are_401(
    http: aiohttp.ClientSession, bridge_url: str, case: str, headers: dict[str, str]
) -> None:
    assert await get_token(http, bridge_url, headers) == (401, "unauthenticated")


ISSUER = "https://login.tradetrust.test"


@pytest.fixture
async def issuer_base(start_gateway: GatewayFactory) -> str:
    """A bridge that wants sessions from ``ISSUER`` for the ``chat`` audience."""
    gw = await start_gateway(session_issuer=ISSUER, session_audience="chat")
    return f"http://127.0.0.1:{gw.http_port}"


async def test_issuer_and_audience_that_match_are_accepted(
    http: aiohttp.ClientSession, issuer_base: str
) -> None:
    good = session_jwt(BUYER, iss=ISSUER, aud="chat")
    assert (await get_token(http, issuer_base, bearer(good)))[0] == 200


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://evil.test", "aud": "chat"},
        {"iss": ISSUER, "aud": "other"},
        {"aud": "chat"},  # no iss
        {"iss": ISSUER},  # no aud
    ],
    ids=["other issuer", "other audience", "no issuer", "no audience"],
)
async def test_issuer_and_audience_are_checked(
    http: aiohttp.ClientSession, issuer_base: str, claims: dict[str, Any]
) -> None:
    token = session_jwt(BUYER, **claims)
    assert await get_token(http, issuer_base, bearer(token)) == (401, "unauthenticated")


async def _public_key_bridge(
    start_gateway: GatewayFactory,
    tmp_path: Path,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> tuple[str, bytes]:
    """A bridge verifying sessions with ``key``'s public half (the dev profile's HS256
    secret is set too: the public key must win over it); its base URL and the PEM."""
    path = tmp_path / "session.pub.pem"
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(pem)
    gw = await start_gateway(session_public_key_file=str(path))
    return f"http://127.0.0.1:{gw.http_port}", pem


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def test_rs256_key_accepts_rs256(
    http: aiohttp.ClientSession, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    private = _rsa_key()
    base, _ = await _public_key_bridge(start_gateway, tmp_path, private)
    status, body = await get_token(
        http, base, bearer(session_jwt(BUYER, key=private, algorithm="RS256"))
    )
    assert (status, body["userId"]) == (200, BUYER)


async def test_rs256_key_refuses_confusion(
    http: aiohttp.ClientSession, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    private = _rsa_key()
    base, pem = await _public_key_bridge(start_gateway, tmp_path, private)
    claims = session_claims(BUYER)
    attacks = {
        # The classic algorithm confusion: HS256 keyed with the (public) PEM.
        "hs256 keyed with the public pem": forged_jwt({"alg": "HS256"}, claims, pem),
        "hs256 keyed with the pem, no newline": forged_jwt({"alg": "HS256"}, claims, pem.strip()),
        "hs256 with the old shared secret": session_jwt(BUYER),
        "alg none": forged_jwt({"alg": "none"}, claims, None),
        "rs256 by another key": session_jwt(BUYER, key=_rsa_key(), algorithm="RS256"),
        "ps256 by the right key": session_jwt(BUYER, key=private, algorithm="PS256"),
        "rs256 expired": session_jwt(BUYER, key=private, algorithm="RS256", exp_in=-60),
    }
    for case, token in attacks.items():
        assert await get_token(http, base, bearer(token)) == (401, "unauthenticated"), case


SELLER_ES = "seller@es"


async def test_es256_key_accepts_es256(
    http: aiohttp.ClientSession, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    base, _ = await _public_key_bridge(start_gateway, tmp_path, private)
    status, body = await get_token(
        http, base, bearer(session_jwt(SELLER_ES, key=private, algorithm="ES256"))
    )
    assert (status, body["userId"]) == (200, SELLER_ES)


async def test_es256_key_refuses_every_other_token(
    http: aiohttp.ClientSession, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    base, pem = await _public_key_bridge(
        start_gateway, tmp_path, ec.generate_private_key(ec.SECP256R1())
    )
    claims = session_claims(BUYER)
    for case, token in {
        "hs256 keyed with the public pem": forged_jwt({"alg": "HS256"}, claims, pem),
        "rs256 token": session_jwt(BUYER, key=_rsa_key(), algorithm="RS256"),
        "es256 by another key": session_jwt(
            BUYER, key=ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"
        ),
        "alg none": forged_jwt({"alg": "none"}, claims, None),
        "hs256 with the dev secret": session_jwt(BUYER, key=DEV_SESSION_SECRET),
    }.items():
        assert await get_token(http, base, bearer(token)) == (401, "unauthenticated"), case


async def test_no_session_key_configured_rejects_everything(
    http: aiohttp.ClientSession, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway(session_secret=None)
    base = f"http://127.0.0.1:{gw.http_port}"
    assert await get_token(http, base, bearer(session_jwt(BUYER))) == (401, "unauthenticated")
