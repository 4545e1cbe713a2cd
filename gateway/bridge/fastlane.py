"""The token route's fast lane: the token provider's usual request answered as it arrives.

``GET /api/chat/stream/token`` with ``Authorization: Bearer <session>`` is most of the
bridge's traffic (every page load, every token refresh), and its answer is local CPU work:
verify the session, sign a token. Through aiohttp, the request object, the handler task,
the router and the response object took about two thirds of a token request's CPU
(``make bench``, HTTP token rows). :class:`TokenFastLane` answers that one request straight
from the bytes the connection received, with the same handler logic
(:func:`gateway.bridge.handlers.token_for`), the same response bytes, the same metrics and
the same access line.

It takes only what it can answer exactly as the routed handler would, and declines the rest
(``None``): aiohttp then gets the bytes and answers them as always. It takes:

- one whole request head, alone in one read, nothing after it (no body, no pipelining);
- the request line ``GET /api/chat/stream/token HTTP/1.1`` exactly (no query string);
- header lines in the strict RFC 9110 grammar (token names, printable ASCII values), no
  more than :data:`MAX_HEAD_BYTES` in all;
- no header twice, at most :data:`MAX_HEADERS`; ``Host`` and ``Authorization``; no ``Origin``
  (CORS headers), no body headers, no ``Expect`` or ``Upgrade``, ``Connection`` only as
  ``keep-alive``;
- a session that verifies, a user within the rate limit, a gateway not draining.

Every error goes the routed way, so its answer and log line are the handler's. The
connection decides when to ask (:class:`gateway.bridge.connections.ConnectionGuard`):
once it has handed bytes to aiohttp, it never asks again. ``CHAT_GATEWAY_HTTP_FAST_LANE=false``
turns the lane off. ``tests/bridge/test_fastlane.py`` holds it to aiohttp: for generated
requests the lane either declines or answers the bytes the routed handler answers (only
``Date`` and the token's own second may differ).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from email.utils import formatdate
from functools import lru_cache

from aiohttp.http import SERVER_SOFTWARE

from gateway.admission import Admission
from gateway.bridge.handlers import TOKEN_HEADERS, BridgeContext, token_for, token_json

__all__ = ["MAX_HEADERS", "MAX_HEAD_BYTES", "LaneRecorder", "TokenFastLane"]

MAX_HEAD_BYTES = 8190
"""Longest request head the lane reads (aiohttp's own limit for one line)."""
MAX_HEADERS = 64
"""Most header lines the lane reads."""

# Header lines: a token name, a colon, a value of printable ASCII and tabs; each line
# ends in CRLF and the head in an empty line. No obs-fold (a line starting with
# whitespace is no token), no bare CR or LF, no control or non-ASCII bytes.
_HEADER_LINES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n)*\r\n")
_DECLINED = frozenset({b"origin", b"content-length", b"transfer-encoding", b"expect", b"upgrade"})
"""Headers that change the answer: CORS, a body, an interim response, a protocol switch."""

LaneRecorder = Callable[[float, str], None]
"""``record(started, request_id)``: the route guard's metrics and access line of one
answered request (:meth:`~gateway.bridge.guard.RouteGuard.recorder`)."""


@lru_cache(maxsize=2)
def _date(second: int) -> bytes:
    return formatdate(second, usegmt=True).encode("ascii")


class TokenFastLane:
    """Answers the plain token request of one bridge (:meth:`answer`), or declines it."""

    def __init__(
        self,
        ctx: BridgeContext,
        *,
        path: str,
        admission: Admission,
        record: LaneRecorder,
    ) -> None:
        """``record``: for ``GET path`` answered 200."""
        self._ctx = ctx
        self._admission = admission
        self._record = record
        self._request_line = f"GET {path} HTTP/1.1\r\n".encode("ascii")
        fixed = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in TOKEN_HEADERS.items())
        self._status_and_headers = b"HTTP/1.1 200 OK\r\n" + fixed + b"Content-Length: "
        self._server = f"\r\nServer: {SERVER_SOFTWARE}\r\n\r\n".encode("latin-1")

    def answer(self, data: bytes) -> bytes | None:
        """The whole HTTP response to ``data``, one connection's read; ``None``: not taken
        (nothing was counted or changed), hand ``data`` to aiohttp."""
        if (
            not data.startswith(self._request_line)
            or len(data) > MAX_HEAD_BYTES
            or data.find(b"\r\n\r\n") != len(data) - 4
            or _HEADER_LINES.fullmatch(data, len(self._request_line)) is None
            or self._admission.draining
        ):
            return None
        started = time.perf_counter()
        lines = data[len(self._request_line) : -4].split(b"\r\n")
        if len(lines) > MAX_HEADERS:
            return None
        headers: dict[bytes, bytes] = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.lower()] = value
        authorization = headers.get(b"authorization")
        connection = headers.get(b"connection")
        if (
            len(headers) != len(lines)  # a header twice (aiohttp refuses some twice)
            or authorization is None
            or b"host" not in headers  # HTTP/1.1 requires it: aiohttp refuses a head without
            or not _DECLINED.isdisjoint(headers)
            or (connection is not None and connection.strip(b" \t").lower() != b"keep-alive")
        ):
            return None
        request_id = headers.get(b"x-request-id")
        ctx = self._ctx
        try:
            user_id = ctx.verifier.user_id(
                ctx.verifier.token_from(authorization.strip(b" \t").decode("ascii"), {}),
                log_rejection=False,  # the routed handler verifies it again, and logs
            )
            body = token_json(token_for(ctx, user_id, None)).encode()
        except Exception:  # every refusal (and any fault) is answered the routed way
            return None
        now = time.time()
        supplied = b"" if request_id is None else request_id.strip(b" \t")
        self._record(started, supplied.decode("ascii"))
        return b"%s%d\r\nDate: %s%s%s" % (
            self._status_and_headers,
            len(body),
            _date(int(now)),
            self._server,
            body,
        )
