"""Field validation. Every check names the proto field it rejects.

Ids follow Stream's rules, kept narrower on purpose: ASCII only, so look-alike characters
(Cyrillic ``а`` for Latin ``a``) can never name a different user or order.

- user ids: Stream accepts letters, digits, ``@``, ``_`` and ``-``;
- order ids: letters, digits, ``_`` and ``-`` (they become part of a Stream channel id,
  which also forbids ``@``).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from urllib.parse import urlsplit

from gateway.domain import InvalidArgumentError, Participant

MAX_ID_LENGTH = 128
MAX_DISPLAY_NAME_LENGTH = 100
MAX_URL_LENGTH = 2048
MAX_REASON_LENGTH = 500

_NOT_TEXT = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
"""Unicode categories a display name refuses: Cc control, Cf format (bidi overrides,
zero-width), Cs/Co/Cn not text."""

_USER_ID = re.compile(r"[A-Za-z0-9@_-]+")
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]+")


def _check_id(field: str, value: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not value:
        raise InvalidArgumentError(field, "is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgumentError(field, f"must be at most {MAX_ID_LENGTH} characters")
    if pattern.fullmatch(value) is None:
        raise InvalidArgumentError(field, f"may contain only {allowed}")
    return value


def user_id(value: str, field: str = "user_id") -> str:
    """Validate a Stream user id."""
    return _check_id(field, value, _USER_ID, "ASCII letters, digits, '@', '_' and '-'")


def order_id(value: str, field: str = "order_id") -> str:
    """Validate an order id."""
    return _check_id(field, value, _ORDER_ID, "ASCII letters, digits, '_' and '-'")


def display_name(value: str, field: str) -> str:
    """Validate an optional display name: printable text, no control characters."""
    if len(value) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidArgumentError(field, f"must be at most {MAX_DISPLAY_NAME_LENGTH} characters")
    # Printable ASCII (the usual name) has none of them: skip the per-character lookup.
    if not (value.isascii() and value.isprintable()):
        for ch in value:
            if unicodedata.category(ch) in _NOT_TEXT:
                raise InvalidArgumentError(
                    field, f"must not contain control or format characters (U+{ord(ch):04X})"
                )
    if value and value.strip() != value:
        raise InvalidArgumentError(field, "must not start or end with whitespace")
    return value


def image_url(value: str, field: str) -> str:
    """Validate an optional absolute http(s) URL."""
    if not value:
        return value
    if len(value) > MAX_URL_LENGTH:
        raise InvalidArgumentError(field, f"must be at most {MAX_URL_LENGTH} characters")
    if not value.isascii() or any(ch.isspace() or ord(ch) < 0x21 or ch == "\x7f" for ch in value):
        raise InvalidArgumentError(
            field, "must be a percent-encoded URL without spaces or control characters"
        )
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a bad port
    except ValueError as exc:
        raise InvalidArgumentError(field, "is not a valid URL") from exc
    if parts.scheme not in {"https", "http"}:
        raise InvalidArgumentError(field, "must be an absolute https:// or http:// URL")
    if not parts.hostname or "@" in parts.netloc or (port is not None and port == 0):
        raise InvalidArgumentError(field, "must name a host (and no user info)")
    return value


_PARTICIPANT_FIELDS = {
    role: (f"{role}.user_id", f"{role}.display_name", f"{role}.image_url")
    for role in ("buyer", "seller", "agent")
}


def participant(value: Participant, field: str) -> Participant:
    """Validate a participant; ``field`` is ``buyer``, ``seller`` or ``agent``."""
    names = _PARTICIPANT_FIELDS.get(field) or (
        f"{field}.user_id",
        f"{field}.display_name",
        f"{field}.image_url",
    )
    user_id(value.user_id, names[0])
    display_name(value.display_name, names[1])
    image_url(value.image_url, names[2])
    return value


def reason(value: str, field: str = "reason") -> str:
    """Validate an optional free-text reason: at most 500 characters of printable text
    (line breaks allowed; no other control or format characters)."""
    if len(value) > MAX_REASON_LENGTH:
        raise InvalidArgumentError(field, f"must be at most {MAX_REASON_LENGTH} characters")
    for ch in value:
        if ch not in "\n\r\t" and unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"}:
            raise InvalidArgumentError(
                field, f"must not contain control or format characters (U+{ord(ch):04X})"
            )
    return value


def token_ttl(
    value: timedelta | None,
    *,
    default: timedelta,
    minimum: timedelta,
    maximum: timedelta,
    field: str = "ttl",
) -> timedelta:
    """Resolve and bound a token lifetime (whole seconds)."""
    if value is None:
        return default
    if value < minimum or value > maximum:
        raise InvalidArgumentError(
            field,
            f"must be between {int(minimum.total_seconds())}s and {int(maximum.total_seconds())}s",
        )
    return timedelta(seconds=int(value.total_seconds()))
