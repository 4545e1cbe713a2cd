"""HS256 session verification without PyJWT's per-call overhead, held to PyJWT's verdicts.

:meth:`HS256Sessions.decode` answers exactly what ``jwt.decode(token, key,
algorithms=["HS256"], issuer=..., audience=..., leeway=..., options={"require": ["exp",
"sub"]})`` answers: the same claims, or the same exception. It gets there in two ways:

- the *fast path* handles the shape every real session has: a header this verifier has
  already seen to be a plain HS256 header, canonical base64url segments, a valid
  signature, a JSON object payload whose registered claims have plain types (``exp``,
  ``iat``, ``nbf`` integers, ``sub`` and ``jti`` strings, no ``aud``, the configured ``iss``)
  and whose times are valid now. It only ever *accepts*;
- everything else, every rejection included, is decided by PyJWT itself.

So the fast path can only be wrong by accepting what PyJWT would refuse, and every
condition it checks is one PyJWT checks the same way (see ``jwt/api_jws.py`` and
``jwt/api_jwt.py``, PyJWT 2.15). ``tests/bridge/test_hs256_differential.py`` holds it to
that with hypothesis: valid, expired, not-yet-valid, mutated header/payload/signature,
other algorithms, ``none``, odd JSON; the same verdict and the same claims every time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt

from gateway.lru import BoundedCache

__all__ = ["HS256Sessions"]

_MIN_KEY_BYTES = 32
"""Shorter keys make PyJWT warn on every decode: such keys always take PyJWT's path."""


def _segment(data: bytes) -> bytes | None:
    """A canonical unpadded base64url segment's bytes, or ``None`` (let PyJWT judge it)."""
    try:
        decoded = base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != data:
        return None  # padding, junk characters, non-canonical trailing bits
    return decoded


def _json_object(segment: bytes) -> dict[str, Any] | None:
    """The JSON object a canonical segment holds, or ``None`` (let PyJWT judge it)."""
    raw = _segment(segment)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _plain_hs256_header(segment: bytes) -> bool:
    """Whether a header segment is one PyJWT would accept for HS256 with no further checks."""
    header = _json_object(segment)
    if header is None or header.get("alg") != "HS256":
        return False
    if "crit" in header or "b64" in header:
        return False
    return "kid" not in header or isinstance(header["kid"], str)


class HS256Sessions:
    """Decodes HS256 session JWTs with PyJWT's verdicts (see the module docstring)."""

    def __init__(
        self,
        key: bytes,
        *,
        issuer: str | None,
        audience: str | None,
        leeway: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._now = now
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._fast = len(key) >= _MIN_KEY_BYTES and audience is None
        # header segment -> whether it is a plain HS256 header (a login service uses few)
        self._headers: BoundedCache[bytes, bool] = BoundedCache(64)

    def decode(self, token: str) -> dict[str, Any]:
        """The token's claims, exactly as PyJWT's ``decode`` would return them.

        Raises:
            jwt.InvalidTokenError: the very exception PyJWT raises for this token.
        """
        claims = self._fast_path(token) if self._fast else None
        if claims is not None:
            return claims
        return jwt.decode(
            token,
            self._key,
            algorithms=["HS256"],
            issuer=self._issuer,
            audience=self._audience,
            leeway=self._leeway,
            options={"require": ["exp", "sub"]},
        )

    def _fast_path(self, token: str) -> dict[str, Any] | None:
        """The claims of a token PyJWT would accept, found cheaply; ``None``: ask PyJWT."""
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            return None
        signing_input, dot, signature_segment = raw.rpartition(b".")
        header_segment, dot2, payload_segment = signing_input.partition(b".")
        if not dot or not dot2:
            return None
        plain = self._headers.get(header_segment)
        if plain is None:
            plain = _plain_hs256_header(header_segment)
            self._headers.put(header_segment, plain)
        if not plain:
            return None
        signature = _segment(signature_segment)
        if signature is None:
            return None
        mac = self._mac.copy()
        mac.update(signing_input)
        if not hmac.compare_digest(mac.digest(), signature):
            return None
        claims = _json_object(payload_segment)
        if claims is None or not self._plain_claims(claims):
            return None
        return claims

    def _plain_claims(self, claims: dict[str, Any]) -> bool:
        """Registered claims of plain types that PyJWT accepts now (same order of checks)."""
        exp, sub = claims.get("exp"), claims.get("sub")
        if type(exp) is not int or type(sub) is not str:
            return False
        now, leeway = self._now(), self._leeway
        for name in ("iat", "nbf"):
            if name in claims:
                moment = claims[name]
                if type(moment) is not int or moment > now + leeway:
                    return False
        if exp <= now - leeway:
            return False
        if self._issuer is not None and claims.get("iss") != self._issuer:
            return False
        if "aud" in claims and claims["aud"]:
            return False
        return "jti" not in claims or type(claims["jti"]) is str
