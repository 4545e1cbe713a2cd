"""The JSON log format and the request scope."""

from __future__ import annotations

import json
import logging

from gateway import logs


def record(msg: str, created: float, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("gateway.access", logging.INFO, __file__, 1, msg, (), None)
    rec.created = created
    rec.__dict__.update(extra)
    return rec


def test_json_line_has_time_level_fields_and_request_id() -> None:
    logs.begin_request("trace-7")
    created = 1_795_000_000.25  # 2026-11-18T11:06:40.250Z
    line = logs.JsonFormatter().format(
        record("rpc", created, method="/x.Y/Z", code="OK", duration_ms=0.5, service="svc")
    )
    out = json.loads(line)
    assert out["ts"] == "2026-11-18T11:06:40.250Z"
    assert (out["level"], out["logger"], out["msg"]) == ("INFO", "gateway.access", "rpc")
    assert (out["method"], out["code"], out["duration_ms"], out["service"]) == (
        "/x.Y/Z",
        "OK",
        0.5,
        "svc",
    )
    assert out["request_id"] == "trace-7"
    assert list(out)[:4] == ["ts", "level", "logger", "msg"]


def test_timestamps_within_and_across_seconds() -> None:
    formatter = logs.JsonFormatter()
    stamps = [
        json.loads(formatter.format(record("m", t)))["ts"]
        for t in (1_795_000_000.0, 1_795_000_000.75, 1_795_000_001.125, 1_795_000_000.5)
    ]
    assert stamps == [
        "2026-11-18T11:06:40.000Z",
        "2026-11-18T11:06:40.750Z",
        "2026-11-18T11:06:41.125Z",
        "2026-11-18T11:06:40.500Z",
    ]


def test_non_ascii_and_odd_values_are_kept_readable() -> None:
    line = logs.JsonFormatter().format(record("naïve ✓", 0.0, reason=b"raw"))
    out = json.loads(line)
    assert out["msg"] == "naïve ✓" and "naïve" in line  # not \\u-escaped
    assert out["reason"] == "b'raw'"


def test_fresh_request_id_is_made_once_per_scope() -> None:
    scope = logs.begin_request(None)
    first = scope.id
    assert first and scope.id == first
    assert logs.begin_request("bad\nid").id != "bad\nid"
