"""Stream user tokens: HS256 JWTs signed locally with the Stream API secret."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt

from gateway.domain import IssuedToken

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class StreamTokenSigner:
    """Signs Stream user tokens (claims ``user_id``, ``iat``, ``exp``). Never calls Stream."""

    def __init__(self, *, api_key: str, api_secret: str, clock: Clock = utc_now) -> None:
        self._api_key = api_key
        self._secret = api_secret.encode()
        self._clock = clock

    @property
    def api_key(self) -> str:
        """The Stream API key the token belongs with."""
        return self._api_key

    def sign(self, user_id: str, ttl: timedelta) -> IssuedToken:
        """Sign a token for ``user_id`` valid for ``ttl`` (whole seconds) from now."""
        # Stream compares iat/exp as integer seconds; truncate so exp - iat == ttl exactly.
        now = self._clock().replace(microsecond=0)
        expires = now + ttl
        token = jwt.encode(
            {"user_id": user_id, "iat": int(now.timestamp()), "exp": int(expires.timestamp())},
            self._secret,
            algorithm="HS256",
        )
        return IssuedToken(
            token=token,
            user_id=user_id,
            api_key=self._api_key,
            issue_time=now,
            expire_time=expires,
        )
