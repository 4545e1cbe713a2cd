"""Hot-path shortcuts of the token endpoint never accept or say what the slow path would not."""

from __future__ import annotations

import time

import jwt
import pytest

from gateway.bridge import session as session_module
from gateway.bridge.session import LEEWAY_S, SessionVerifier
from gateway.domain import UnauthenticatedError
from tests.helpers.clock import FakeClock

SECRET = "session-cache-test-secret-at-least-32-bytes"


def make(clock: FakeClock) -> SessionVerifier:
    return SessionVerifier(
        key=SECRET.encode(), algorithm="HS256", cookie_name="c", clock=clock.timestamp
    )


def token(exp: float, sub: str = "buyer-42", secret: str = SECRET) -> str:
    return jwt.encode({"sub": sub, "exp": int(exp)}, secret, algorithm="HS256")


def test_cached_session_still_expires() -> None:
    now = time.time()
    clock = FakeClock(now)
    verifier = make(clock)
    session = token(now + 60)
    assert verifier.user_id(session) == "buyer-42"
    clock.advance(30)
    assert verifier.user_id(session) == "buyer-42"  # from the memo
    clock.advance(30 + LEEWAY_S + 1)
    with pytest.raises(UnauthenticatedError, match="expired"):
        verifier.user_id(session)


def test_tampered_copy_of_a_cached_session_is_refused() -> None:
    verifier = make(FakeClock(time.time()))
    good = token(time.time() + 600)
    assert verifier.user_id(good) == "buyer-42"
    header, payload, signature = good.split(".")
    forged_payload = jwt.utils.base64url_encode(
        b'{"sub":"seller-7","exp":%d}' % int(time.time() + 600)
    ).decode()
    with pytest.raises(UnauthenticatedError):
        verifier.user_id(f"{header}.{forged_payload}.{signature}")


def test_session_signed_with_another_secret_is_refused_after_a_cached_one() -> None:
    verifier = make(FakeClock(time.time()))
    assert verifier.user_id(token(time.time() + 600)) == "buyer-42"
    with pytest.raises(UnauthenticatedError):
        verifier.user_id(token(time.time() + 600, sub="seller-7", secret="x" * 40))


def test_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "VERIFIED_CACHE_ENTRIES", 3)
    verifier = make(FakeClock(time.time()))
    sessions = [token(time.time() + 600, sub=f"u{i}") for i in range(5)]
    for i, s in enumerate(sessions):
        assert verifier.user_id(s) == f"u{i}"
    assert len(verifier._verified) == 3


def test_token_json_matches_json_dumps() -> None:
    import json
    from datetime import UTC, datetime

    from gateway.bridge.handlers import token_json
    from gateway.domain import IssuedToken

    issued = IssuedToken(
        token="aaa.bbb-_.ccc",
        user_id="ana@trade_trust-1",
        api_key='key"with\\odd',
        issue_epoch=int(datetime(2026, 11, 25, 12, tzinfo=UTC).timestamp()),
        expire_epoch=int(datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()),
    )
    assert json.loads(token_json(issued)) == {
        "token": "aaa.bbb-_.ccc",
        "expiresAt": "2026-11-26T12:00:00Z",
        "apiKey": 'key"with\\odd',
        "userId": "ana@trade_trust-1",
    }
