"""Stream user tokens: HS256 JWTs signed locally with the Stream API secret.

Signing is on the hot path of every chat page load, so it avoids generic JWT machinery:
the header segment is constant, the HMAC key schedule is computed once, and a token is
reused for identical claims within the same second. That reuse is exact, not a cache of
something stale: ``iat``/``exp`` have one-second resolution, so two signings of the same
user and lifetime within one second produce byte-identical tokens anyway (and the reuse
never crosses a second, which the revocation rule in :mod:`gateway.service` relies on).
Tests verify every token with PyJWT.

``iat`` lies ``CHAT_GATEWAY_TOKEN_IAT_SKEW`` seconds before the signing second: Stream
refuses a token whose ``iat`` is ahead of its own clock (error code 42), and stream-chat
JS does not refresh on that error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gateway.domain import IssuedToken
from gateway.lru import BoundedCache

Clock = Callable[[], datetime]

_HEADER_SEGMENT = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
_MAX_REUSED = 4096


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class StreamTokenSigner:
    """Signs Stream user tokens (claims ``user_id``, ``iat``, ``exp``). Never calls Stream."""

    def __init__(
        self, *, api_key: str, api_secret: str, iat_skew_s: int = 5, clock: Clock | None = None
    ) -> None:
        """``iat_skew_s``: how many seconds ``iat`` lies before the signing second (Stream
        refuses tokens issued ahead of its clock). ``clock``: for tests; by default the
        system clock, read as epoch seconds."""
        self._api_key = api_key
        self._iat_skew_s = iat_skew_s
        self._mac = hmac.new(api_secret.encode(), digestmod=hashlib.sha256)
        self._epoch: Callable[[], float] = (
            time.time if clock is None else lambda: clock().timestamp()
        )
        self._second = -1
        self._reuse: BoundedCache[tuple[str, int], IssuedToken] = BoundedCache(_MAX_REUSED)

    @property
    def api_key(self) -> str:
        """The Stream API key the token belongs with."""
        return self._api_key

    def sign(self, user_id: str, ttl: timedelta) -> IssuedToken:
        """Sign a token for ``user_id`` valid for ``ttl`` (whole seconds) from now: ``exp`` is
        the signing second plus ``ttl``, ``iat`` the signing second minus the skew."""
        # Stream compares iat/exp as integer seconds.
        second = int(self._epoch())
        lifetime = int(ttl.total_seconds())
        if second != self._second:
            self._second = second
            self._reuse.clear()
        key = (user_id, lifetime)
        issued = self._reuse.get(key)
        if issued is None:
            issued = self._sign(user_id, second - self._iat_skew_s, second + lifetime)
            self._reuse.put(key, issued)
        return issued

    def reusable(self, user_id: str, ttl: timedelta) -> IssuedToken | None:
        """The token :meth:`sign` would reuse now (same user and lifetime, this second)."""
        if int(self._epoch()) != self._second:
            return None
        return self._reuse.peek((user_id, int(ttl.total_seconds())))

    def _sign(self, user_id: str, iat: int, exp: int) -> IssuedToken:
        payload = f'{{"user_id":{json.dumps(user_id)},"iat":{iat},"exp":{exp}}}'
        signing_input = _HEADER_SEGMENT + b"." + _b64(payload.encode())
        mac = self._mac.copy()
        mac.update(signing_input)
        token = (signing_input + b"." + _b64(mac.digest())).decode()
        return IssuedToken(
            token=token,
            user_id=user_id,
            api_key=self._api_key,
            issue_epoch=iat,
            expire_epoch=exp,
        )
