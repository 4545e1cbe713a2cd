"""User (client-side) token checks, the way Stream checks them.

Codes and messages, from Stream's error table (docs/debugging_and_cli/api_errors_response.md
in GetStream/stream-chat-python) and messages seen in its SDKs' issue trackers:

* 401 / 43 ``JWTAuth error: signature is not valid. Make sure the token is created using the
  secret for API key "..."`` (stream-chat-flutter/flutter-samples issue 70);
* 401 / 5  any other malformed token, or one without a ``user_id`` claim;
* 401 / 40 ``JWTAuth error: token is expired (exp)`` (code: "Authentication Token Expired");
* 401 / 42 ``JWTAuth error: token used before issue at (iat)`` for an ``iat`` in the future
  (stream-node issue 64, Vision-Agents issue 112);
* 401 / 41 ``JWTAuth error: token is not valid yet (nbf)``;
* 401 / 40 ``This token has been revoked, please generate a new token`` for a revoked token
  (stream-chat-swift issue 2903: revoked tokens are reported as expired, code 40).

All time checks use whole Unix seconds (``floor`` of the clock), as JWT libraries do with
integer claims: a token whose ``iat`` is the current second is accepted, one a second ahead
is refused with 42.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import jwt
from jwt.types import Options

from tests.stream_double.model import StreamError

REVOKED = "This token has been revoked, please generate a new token"


def verify_user_token(
    token: str,
    *,
    api_key: str,
    api_secret: str,
    now: float,
    revoked_before: Callable[[str], list[datetime]],
) -> str:
    """The token's ``user_id`` if Stream would accept it at ``now``, else ``StreamError``.

    ``revoked_before(user_id)`` gives the revocation cutoffs that apply (the user's and the
    app's ``revoke_tokens_issued_before``). A token is revoked when it has no ``iat`` or when its
    ``iat`` is before the cutoff truncated to whole seconds; a token issued in the cutoff's
    own second is NOT revoked. This is what Stream does as far as we can tell: in
    stream-chat-js issue 1214 a token with ``iat = floor(now)`` revoked about half a second
    later stayed valid "half of the time", i.e. exactly when both fell in the same second.
    Tests that must see a token refused should revoke at least one second after its ``iat``.
    """
    claims = _decode(token, api_key, api_secret)
    user_id = claims.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise StreamError(401, 5, "JWTAuth error: user_id is missing from the token claims")
    second = math.floor(now)
    exp, iat, nbf = (_int_claim(claims, name) for name in ("exp", "iat", "nbf"))
    if exp is not None and second > exp:
        raise StreamError(401, 40, "JWTAuth error: token is expired (exp)")
    if iat is not None and iat > second:
        raise StreamError(401, 42, "JWTAuth error: token used before issue at (iat)")
    if nbf is not None and nbf > second:
        raise StreamError(401, 41, "JWTAuth error: token is not valid yet (nbf)")
    for cutoff in revoked_before(user_id):
        if iat is None or iat < math.floor(cutoff.timestamp()):
            raise StreamError(401, 40, REVOKED)
    return user_id


def _decode(token: str, api_key: str, api_secret: str) -> dict[str, Any]:
    # Time claims are checked by the caller against the double's clock, not PyJWT's.
    options: Options = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}
    try:
        claims = jwt.decode(token, api_secret, algorithms=["HS256"], options=options)
    except jwt.InvalidSignatureError as exc:
        raise StreamError(
            401,
            43,
            "JWTAuth error: signature is not valid. Make sure the token is created using "
            f'the secret for API key "{api_key}"',
        ) from exc
    except jwt.InvalidTokenError as exc:
        raise StreamError(401, 5, f"JWTAuth error: {exc}") from exc
    return dict(claims)


def _int_claim(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StreamError(401, 5, f"JWTAuth error: claim {name} must be a number")
    return math.floor(value)
