"""Browser session authentication: the session JWT from TradeTrust's login.

The token comes from ``Authorization: Bearer <jwt>`` or, failing that, the session cookie.
It is verified with exactly one algorithm family, chosen by the configured key (never by
the token's header): an HS256 shared secret, or an RS256/ES256 PEM public key. ``exp`` and
``sub`` are required; ``iss``/``aud`` are checked when configured. ``sub`` is the user id,
and it must be an id Stream accepts. Every failure is :class:`UnauthenticatedError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway import validation
from gateway.bridge.hs256 import HS256Sessions
from gateway.config import BridgeSettings, ConfigError
from gateway.domain import InvalidArgumentError, UnauthenticatedError
from gateway.lru import BoundedCache

logger = logging.getLogger(__name__)

MAX_SESSION_TOKEN_BYTES = 8 * 1024
"""Longer bearer values are refused before any parsing."""

LEEWAY_S = 5
"""Clock skew tolerated on ``exp``/``nbf``/``iat`` between the login service and us."""

_BEARER = "bearer "

VERIFIED_CACHE_ENTRIES = 20_000
"""Sessions remembered as verified (about 300 bytes each)."""


class SessionVerifier:
    """Verifies session JWTs and returns the user id (``sub``)."""

    def __init__(
        self,
        *,
        key: str | bytes | ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None,
        algorithm: str,
        cookie_name: str,
        issuer: str | None = None,
        audience: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._algorithm = algorithm
        self._cookie_name = cookie_name
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        # HS256 secrets are verified on a fast path held to PyJWT's verdicts.
        self._hs256 = (
            HS256Sessions(key, issuer=issuer, audience=audience, leeway=LEEWAY_S)
            if algorithm == "HS256" and isinstance(key, bytes)
            else None
        )
        # token -> (user id, exp): sessions that passed full verification. Only successes
        # are remembered, and only until their own exp, so a forged, altered or expired
        # token is never answered from here; a page load's repeated calls skip the crypto.
        self._verified: BoundedCache[str, tuple[str, int]] = BoundedCache(VERIFIED_CACHE_ENTRIES)

    @classmethod
    def from_settings(cls, settings: BridgeSettings) -> SessionVerifier:
        """Build from ``CHAT_GATEWAY_SESSION_*``; the public key file wins over the secret.

        Raises:
            ConfigError: the key file cannot be read or holds an unsupported key.
        """
        common: dict[str, Any] = {
            "cookie_name": settings.session_cookie,
            "issuer": settings.session_issuer,
            "audience": settings.session_audience,
        }
        if settings.session_public_key_file:
            key, algorithm = _load_public_key(settings.session_public_key_file)
            return cls(key=key, algorithm=algorithm, **common)
        if settings.session_secret:
            return cls(key=settings.session_secret.encode(), algorithm="HS256", **common)
        logger.warning(
            "no CHAT_GATEWAY_SESSION_SECRET or CHAT_GATEWAY_SESSION_PUBLIC_KEY_FILE: "
            "the HTTP bridge rejects every session"
        )
        return cls(key=None, algorithm="HS256", **common)

    @property
    def algorithm(self) -> str:
        """The only JWT ``alg`` accepted."""
        return self._algorithm

    def token_from(self, authorization: str | None, cookies: Mapping[str, str]) -> str:
        """The session token of a request: the ``Authorization`` bearer value first, then
        the cookie (``cookies`` is read only without an ``Authorization`` header)."""
        if authorization is not None:
            if not authorization[: len(_BEARER)].lower() == _BEARER:
                raise UnauthenticatedError("Authorization: expected 'Bearer <session token>'")
            token = authorization[len(_BEARER) :].strip()
            if not token:
                raise UnauthenticatedError("Authorization: expected 'Bearer <session token>'")
            return token
        token = cookies.get(self._cookie_name, "")
        if not token:
            raise UnauthenticatedError("no session: send Authorization: Bearer or the cookie")
        return token

    def user_id(self, token: str, *, log_rejection: bool = True) -> str:
        """Verify ``token`` and return its ``sub`` (``log_rejection``: log why an invalid
        one was refused; off for a caller that hands the request on to be verified again).

        Raises:
            UnauthenticatedError: the token is missing, malformed, forged, of another
                algorithm, expired, not yet valid, for another issuer or audience, or its
                ``sub`` is not a valid user id.
        """
        remembered = self._verified.get(token)
        if remembered is not None:
            user, expires = remembered
            if self._clock() < expires + LEEWAY_S:
                return user
            self._verified.pop(token)
            raise UnauthenticatedError("session expired")
        if self._key is None:
            raise UnauthenticatedError("session verification is not configured")
        if len(token) > MAX_SESSION_TOKEN_BYTES:
            raise UnauthenticatedError("session token is too long")
        try:
            if self._hs256 is not None:
                claims = self._hs256.decode(token)
            else:
                claims = jwt.decode(
                    token,
                    self._key,
                    algorithms=[self._algorithm],
                    issuer=self._issuer,
                    audience=self._audience,
                    leeway=LEEWAY_S,
                    options={"require": ["exp", "sub"]},
                )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthenticatedError("session expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise UnauthenticatedError("session not valid yet") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise UnauthenticatedError("session signed with a wrong algorithm") from exc
        except jwt.InvalidTokenError as exc:
            # Signature, format, iss/aud and missing claims; the detail stays in our log.
            if log_rejection:
                logger.info("session rejected: %s", type(exc).__name__)
            raise UnauthenticatedError("invalid session") from exc
        sub = claims.get("sub")
        if not isinstance(sub, str):
            raise UnauthenticatedError("invalid session: sub must be a string")
        try:
            user = validation.user_id(sub, "sub")
        except InvalidArgumentError as exc:
            raise UnauthenticatedError(f"invalid session: {exc.message}") from exc
        # PyJWT compares int(exp): so does the memo (a float would outlive a fractional exp,
        # and overflow on an absurd one).
        self._verified.put(token, (user, int(claims["exp"])))
        return user


def _load_public_key(
    path: str,
) -> tuple[ec.EllipticCurvePublicKey | rsa.RSAPublicKey, str]:
    setting = "CHAT_GATEWAY_SESSION_PUBLIC_KEY_FILE"
    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{setting}: cannot load a PEM public key from {path}: {exc}") from exc
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ConfigError(f"{setting}: RSA keys must have at least 2048 bits")
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    raise ConfigError(f"{setting}: expected an RSA or P-256 EC public key")
