"""Order id -> Stream channel id.

Stream channel ids allow letters, digits, ``!``, ``-`` and ``_`` and at most 64
characters. Order ids are validated to ``[A-Za-z0-9_-]{1,128}``, so:

- an order id of up to 58 characters maps to ``order-<order_id>`` (readable in the
  Stream dashboard);
- a longer one maps to ``orderh-<first 40 hex digits of its SHA-256>``.

The two prefixes differ at the sixth character (``-`` vs ``h``), so no readable id can
equal a hashed one, and distinct order ids give distinct channel ids (a 160-bit hash
prefix makes a collision among long ids practically impossible).
"""

from __future__ import annotations

import hashlib

MAX_CHANNEL_ID_LENGTH = 64
_READABLE_PREFIX = "order-"
_HASHED_PREFIX = "orderh-"
_MAX_READABLE_ORDER_ID = MAX_CHANNEL_ID_LENGTH - len(_READABLE_PREFIX)


def channel_id_for(order_id: str) -> str:
    """The Stream channel id of a (validated) order id."""
    if len(order_id) <= _MAX_READABLE_ORDER_ID:
        return _READABLE_PREFIX + order_id
    return _HASHED_PREFIX + hashlib.sha256(order_id.encode()).hexdigest()[:40]
