"""Log formatting (JSON lines or text) and the request-scoped log fields.

Only ``__main__`` calls :func:`configure_logging`; modules log through
``logging.getLogger(__name__)``. Per-request lines are written by :func:`access` as
lines of the ``gateway.access`` logger at INFO with the fields of :data:`FIELDS`;
turning them off (``CHAT_GATEWAY_ACCESS_LOG=false`` or a level above INFO) costs one
flag check. Lines are written in batches (:class:`BufferedLineHandler`).
Nothing here ever sees a key, token or session JWT: callers pass only method names,
codes, durations, service names and request ids.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import itertools
import json
import json.encoder
import logging
import math
import os
import re
import sys
import threading
import time
from typing import Any

__all__ = [
    "FIELDS",
    "JsonFormatter",
    "TextFormatter",
    "access",
    "access_logger",
    "AccessLine",
    "RequestScope",
    "begin_request",
    "configure_logging",
    "current_request",
    "new_request_id",
]

access_logger = logging.getLogger("gateway.access")
"""One INFO line per RPC and per HTTP request."""


class RequestScope:
    """What the logs know about the RPC or HTTP request being handled: its id (the
    caller's ``x-request-id`` if usable, else a fresh one, made only when first logged)
    and, for RPCs, the authenticated calling service."""

    __slots__ = ("_id", "_supplied", "service")

    def __init__(self, supplied: str | None = None) -> None:
        self._supplied = supplied
        self._id: str | None = None
        self.service = ""

    @property
    def id(self) -> str:
        """The request id (stable for the scope's lifetime)."""
        if self._id is None:
            self._id = new_request_id(self._supplied)
        return self._id


current_request: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "current_request", default=None
)
"""The scope of the RPC or HTTP request the current task is handling."""


def begin_request(supplied_id: str | None) -> RequestScope:
    """Open the current task's request scope (``supplied_id``: the ``x-request-id``)."""
    scope = RequestScope(supplied_id)
    current_request.set(scope)
    return scope


def current_service() -> str:
    """The current RPC's calling service, ``-`` when not authenticated (or not an RPC)."""
    scope = current_request.get()
    return (scope.service if scope is not None else "") or "-"


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


# One encoder for every line: json.dumps with non-default options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


@functools.lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


_last_stamp: tuple[int, str] = (-1, "")
"""The last time stamp made: (its millisecond, its text)."""


def _timestamp(created: float) -> str:
    """``2026-11-25T21:04:29.123Z``; each second is formatted once, and the text of the
    last millisecond is reused (lines come in bursts: at full load a dozen a millisecond)."""
    global _last_stamp
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    moment = seconds * 1000 + millis
    last = _last_stamp  # one read: another thread may replace it meanwhile
    if last[0] == moment:
        return last[1]
    text = f"{_second(seconds)}.{millis:03d}Z"
    _last_stamp = (moment, text)
    return text


_SECRETS = re.compile(
    r"(?i)(?P<bearer>bearer\s+)[^\s'\"\\,;)]+"
    r"|(?P<jwt>eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*)"
    r"|(?P<header>authorization['\"]?\s*[:=,]\s*\(?\s*(?:b(?=['\"]))?['\"]?)[^'\"\r\n]+"
)


def redact(text: str) -> str:
    """``text`` with bearer values, JWTs and ``authorization`` values replaced.

    Applied to every line from other libraries' loggers (grpc, aiohttp: they may quote a
    malformed header whole) and to every traceback; the gateway's own lines never carry
    a secret and are not scanned, which keeps access lines cheap.
    """
    if "eyJ" not in text and "earer" not in text and "uthorization" not in text:
        return text  # the common case: nothing that could be a secret

    def hide(match: re.Match[str]) -> str:
        prefix = match.group("bearer") or match.group("header")
        return f"{prefix}[redacted]" if prefix else "[redacted]"

    return _SECRETS.sub(hide, text)


def _message(record: logging.LogRecord) -> str:
    message = record.getMessage()
    return message if record.name.startswith("gateway") else redact(message)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg`` and any of
    :data:`FIELDS`; ``exc`` carries a traceback. Other libraries' secrets are redacted."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": _message(record),
        }
        values = record.__dict__
        for name in FIELDS:
            value = values.get(name)
            if value is not None:
                out[name] = value
        if "request_id" not in out:
            scope = current_request.get()
            if scope is not None:
                out["request_id"] = scope.id
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return _ENCODER.encode(out)


def _one_line(value: object) -> str:
    """``value`` as text with line breaks and other control characters escaped, so no
    field can start a forged log line."""
    text = str(value)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


class TextFormatter(logging.Formatter):
    """``time level logger message key=value…`` for people reading a terminal; a record's
    message and fields stay on its one line (tracebacks follow, indented by Python)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging API
        record.message = _one_line(_message(record))
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging API
        return redact(super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        values = record.__dict__
        extras = [
            f"{name}={_one_line(values[name])}" for name in FIELDS if values.get(name) is not None
        ]
        if values.get("request_id") is None:  # as the JSON format does
            scope = current_request.get()
            if scope is not None:
                extras.append(f"request_id={_one_line(scope.id)}")
        if extras:
            head, sep, tail = line.partition("\n")
            line = f"{head} {' '.join(extras)}{sep}{tail}"
        return line


class BufferedLineHandler(logging.Handler):
    """Writes lines to a stream in batches: a line below WARNING waits (at most
    :data:`FLUSH_INTERVAL_S`, or until :data:`FLUSH_BYTES` are waiting) to go out with the
    next ones, instead of costing a write of its own; WARNING and above flush at once, with
    everything before them. Lines keep their order. A process killed with SIGKILL may lose
    the last interval's INFO lines (access lines); nothing is lost on a normal exit."""

    FLUSH_INTERVAL_S = 0.2
    FLUSH_BYTES = 64 * 1024

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self._stream = stream
        self._pending: list[str] = []
        self._size = 0
        self._wake = threading.Event()
        threading.Thread(target=self._flusher, name="log-flusher", daemon=True).start()
        atexit.register(self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.write_line(line, urgent=record.levelno >= logging.WARNING)

    def write_line(self, line: str, *, urgent: bool = False) -> None:
        """Queue one line (without its newline); ``urgent`` writes it now."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._pending.append(line)
            self._size += len(line) + 1
            if urgent or self._size >= self.FLUSH_BYTES:
                self._write_pending()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text = "\n".join(self._pending) + "\n"
        self._pending.clear()
        self._size = 0
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stderr gone (closed pipe at exit): nothing sensible left to do

    def _flusher(self) -> None:
        while not self._wake.wait(self.FLUSH_INTERVAL_S):
            self.flush()


_access_sink: list[_DirectAccess] = []
"""The direct writer of access lines, once :func:`configure_logging` set one up."""


def access(msg: str, fields: dict[str, Any]) -> None:
    """One access line (``msg`` is ``rpc`` or ``http``; ``fields`` from :data:`FIELDS`).

    Configured (the gateway's process), the line is formatted straight into the log
    handler's batch, without a LogRecord; otherwise it goes through the
    ``gateway.access`` logger like any record (tests, embedding)."""
    if _access_sink:
        _access_sink[0].write(msg, fields)
    else:
        access_logger.info(msg, extra=fields)


_encode_str = json.encoder.encode_basestring  # what _ENCODER does with a str (C)


def json_value(value: Any) -> str:
    """``value`` as :data:`_ENCODER` writes it, the common types without its Python-level
    dispatch (a float took 2 µs through ``encode``, a tenth of a request's line)."""
    cls = type(value)
    if cls is str:
        return _encode_str(value)
    if cls is int:
        return int.__repr__(value)
    if cls is float and math.isfinite(value):
        return float.__repr__(value)
    return _ENCODER.encode(value)


_REPEATING = frozenset({"event", "method", "path", "code", "status", "service"})
"""Access-line fields whose values repeat from line to line (their text is kept)."""
_MAX_FRAGMENTS = 4096


_ACCESS_HEAD = '"level": "INFO", "logger": "gateway.access", "msg": '
"""What every access line has after its time stamp."""


class _DirectAccess:
    """Access lines formatted straight into ``handler``'s batch, as :class:`JsonFormatter`
    would format their records (tested), without a LogRecord."""

    def __init__(self, handler: BufferedLineHandler) -> None:
        self.handler = handler
        # ', "method": "GET"' for the values that repeat; cleared when full (odd paths).
        self._fragments: dict[tuple[str, Any], str] = {}
        self._names = [(name, f', "{name}": ', name in _REPEATING) for name in FIELDS]

    def write(self, msg: str, fields: dict[str, Any]) -> None:
        """One line: ``msg`` and ``fields`` (from :data:`FIELDS`)."""
        fragments = self._fragments
        parts = [f'{{"ts": "{_timestamp(time.time())}", {_ACCESS_HEAD}"{msg}"']
        for name, prefix, repeating in self._names:
            value = fields.get(name)
            if value is None:
                continue
            if not repeating:
                parts.append(prefix + json_value(value))
                continue
            key = (name, value)
            fragment = fragments.get(key)
            if fragment is None:
                if len(fragments) >= _MAX_FRAGMENTS:
                    fragments.clear()
                fragment = fragments[key] = prefix + json_value(value)
            parts.append(fragment)
        if "request_id" not in fields:
            scope = current_request.get()
            if scope is not None:
                parts.append(', "request_id": ' + json_value(scope.id))
        parts.append("}")
        self.handler.write_line("".join(parts))


_LEADING = ("event", "method", "path", "code", "status")
"""The fields before ``duration_ms``: what an :class:`AccessLine` may fix."""
assert FIELDS[: len(_LEADING) + 1] == (*_LEADING, "duration_ms")


class AccessLine:
    """Access lines of one kind of request that share their leading fields (a route's
    method, path and status): their JSON text is made once, and :meth:`write` adds the
    time, the duration and the request id. The line is the one :func:`access` writes for
    the same fields; a hot path (the bridge's token fast lane) pays a third of the cost."""

    def __init__(self, msg: str, **fixed: Any) -> None:
        unknown = set(fixed) - set(_LEADING)
        if unknown:
            raise ValueError(f"only {_LEADING} can be fixed, not {sorted(unknown)}")
        self._msg = msg
        self._fixed = {name: fixed[name] for name in _LEADING if fixed.get(name) is not None}
        text = "".join(f', "{name}": {json_value(v)}' for name, v in self._fixed.items())
        self._head = f'{_ACCESS_HEAD}"{msg}"{text}'

    def write(self, duration_ms: float, request_id: str) -> None:
        """One line, with this duration and request id."""
        if not _access_sink:
            access(self._msg, {**self._fixed, "duration_ms": duration_ms, "request_id": request_id})
            return
        _access_sink[0].handler.write_line(
            f'{{"ts": "{_timestamp(time.time())}", {self._head}, '
            f'"duration_ms": {json_value(duration_ms)}, "request_id": {json_value(request_id)}}}'
        )


def configure_logging(level: str, fmt: str, *, access_log: bool = True) -> None:
    """Send every log record to stderr as JSON lines (``fmt="json"``) or text, in batches
    (:class:`BufferedLineHandler`); access lines take a direct path (:func:`access`).

    With JSON, whatever else writes to the process's stderr (grpc's C core with
    ``GRPC_VERBOSITY``/``GRPC_TRACE``, a native library, Python itself) is captured and
    re-emitted as JSON lines of the ``native.stderr`` logger, so the stream stays valid.
    """
    stream = _capture_native_stderr() if fmt == "json" else sys.stderr
    handler = BufferedLineHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    _access_sink.clear()
    if fmt == "json" and access_log and logging.getLevelName(level.upper()) <= logging.INFO:
        _access_sink.append(_DirectAccess(handler))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Neither format prints the caller's file and line, thread or process: skip looking them
    # up for every record (the logging HOWTO's "Optimization" settings).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # aiohttp's own access log would duplicate ours (and log raw request lines).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    access_logger.disabled = not access_log


_captured: list[Any] = []


def _capture_native_stderr() -> Any:
    """Point file descriptor 2 at a pipe read by a thread that logs each line, and return
    a stream on the original stderr for the log handler (once per process)."""
    if _captured:
        return _captured[0]
    try:
        original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:
        return sys.stderr
    stream = os.fdopen(original, "w", buffering=1, encoding="utf-8", errors="replace")
    sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    native = logging.getLogger("native.stderr")

    def pump() -> None:
        with os.fdopen(read_end, "r", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                text = line.rstrip("\n")
                if text:
                    native.warning("%s", text)

    threading.Thread(target=pump, name="native-stderr", daemon=True).start()
    _captured.append(stream)
    return stream
