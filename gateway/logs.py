"""Log formatting (JSON lines or text) and the request-scoped log fields.

Only ``__main__`` calls :func:`configure_logging`; modules log through
``logging.getLogger(__name__)``. Per-request lines go to the ``gateway.access`` logger at
INFO with their fields in ``extra`` (see :data:`FIELDS`), so turning them off
(``CHAT_GATEWAY_ACCESS_LOG=false`` or a level above INFO) costs one flag check.
Nothing here ever sees a key, token or session JWT: callers pass only method names,
codes, durations, service names and request ids.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import sys
import time
from typing import Any

__all__ = [
    "FIELDS",
    "JsonFormatter",
    "TextFormatter",
    "access_logger",
    "configure_logging",
    "new_request_id",
    "request_id",
]

access_logger = logging.getLogger("gateway.access")
"""One INFO line per RPC and per HTTP request."""

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
"""The current RPC's or HTTP request's id (``x-request-id`` if the caller sent one)."""

FIELDS = (
    "event",
    "method",
    "path",
    "code",
    "status",
    "duration_ms",
    "service",
    "reason",
    "request_id",
)
"""Structured fields a log call may pass in ``extra``, emitted in this order."""

_MAX_REQUEST_ID = 128


_ID_PREFIX = os.urandom(6).hex()
_id_counter = itertools.count(1)


def new_request_id(supplied: str | None = None) -> str:
    """``supplied`` (printable, at most 128 characters) or a fresh id.

    Fresh ids are a random per-process prefix and a counter: unique across replicas and
    restarts without a random draw (a syscall) per request.
    """
    if supplied and len(supplied) <= _MAX_REQUEST_ID and supplied.isprintable():
        return supplied
    return f"{_ID_PREFIX}{next(_id_counter):x}"


def _timestamp(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg`` and any of
    :data:`FIELDS`; ``exc`` carries a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        values = record.__dict__
        for name in FIELDS:
            value = values.get(name)
            if value is not None:
                out[name] = value
        if "request_id" not in out:
            current = request_id.get()
            if current:
                out["request_id"] = current
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value…`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        values = record.__dict__
        extras = [f"{name}={values[name]}" for name in FIELDS if values.get(name) is not None]
        if extras:
            head, sep, tail = line.partition("\n")
            line = f"{head} {' '.join(extras)}{sep}{tail}"
        return line


def configure_logging(level: str, fmt: str, *, access_log: bool = True) -> None:
    """Send every log record to stderr as JSON lines (``fmt="json"``) or text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp's own access log would duplicate ours (and log raw request lines).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    access_logger.disabled = not access_log
