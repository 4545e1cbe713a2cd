"""The JSON log format and the request scope."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@given(st.lists(st.floats(min_value=0, max_value=4_000_000_000), min_size=1, max_size=20))
def test_time_stamps_match_their_moments_in_any_order(moments: list[float]) -> None:
    # Moments repeat milliseconds, go back and cross seconds: the reused text never lags.
    for created in [m for moment in moments for m in (moment, moment, moment + 0.0004)]:
        seconds = int(created)
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        assert logs._timestamp(created) == f"{expected}.{int((created - seconds) * 1000):03d}Z"


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


def buffered() -> tuple[io.StringIO, logs.BufferedLineHandler]:
    out = io.StringIO()
    handler = logs.BufferedLineHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    return out, handler


@pytest.mark.parametrize(
    "fields",
    [
        {"method": "/x.Y/Z", "code": "OK", "duration_ms": 0.5, "service": "svc"},
        {"method": "GET", "path": '/a"\n\\b', "status": 404, "duration_ms": 1.0, "reason": "ü"},
        {"method": "GET", "path": "/p", "status": 200, "request_id": "own", "event": b"raw"},
    ],
)
def test_direct_access_line_is_the_formatters_line(fields: dict[str, object]) -> None:
    logs.begin_request("trace-9")
    out, handler = buffered()
    logs._DirectAccess(handler).write("http", fields)
    handler.format(record("http", 0.0, **fields))  # the record path, for comparison
    handler.flush()
    direct = json.loads(out.getvalue())
    via_record = json.loads(handler.format(record("http", 0.0, **fields)))
    direct.pop("ts"), via_record.pop("ts")
    assert direct == via_record
    assert list(direct) == list(via_record)


def test_buffered_lines_wait_for_a_warning_and_keep_their_order() -> None:
    out, handler = buffered()
    logger = logging.getLogger("tests.buffered")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("first")
        logger.info("second")
        assert out.getvalue() == ""  # batched: no write per INFO line
        logger.warning("third")
        assert [json.loads(line)["msg"] for line in out.getvalue().splitlines()] == [
            "first",
            "second",
            "third",
        ]
    finally:
        logger.removeHandler(handler)


def test_buffered_lines_reach_the_stream_within_the_flush_interval() -> None:
    out, handler = buffered()
    handler.write_line("quiet")
    deadline = time.monotonic() + 5
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.getvalue() == "quiet\n"


@given(
    st.one_of(
        st.text(),
        st.integers(),
        st.floats(),
        st.booleans(),
        st.none(),
        st.binary(max_size=8),
        st.lists(st.integers(), max_size=3),
    )
)
def test_json_value_is_the_encoders_output(value: object) -> None:
    assert logs.json_value(value) == logs._ENCODER.encode(value)


@pytest.mark.parametrize(
    "fixed",
    [
        {"method": "GET", "path": "/api/chat/stream/token", "status": 200},
        {"event": "e", "method": "/x.Y/Z", "code": "OK"},
        {"method": "GET", "path": '/a"\n\\b\u00fc', "status": 404},
    ],
)
def test_access_line_writes_the_direct_line(
    fixed: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, handler = buffered()
    monkeypatch.setattr(logs, "_access_sink", [logs._DirectAccess(handler)])
    logs.AccessLine("http", **fixed).write(1.25, "rid-1")
    logs._DirectAccess(handler).write("http", {**fixed, "duration_ms": 1.25, "request_id": "rid-1"})
    handler.flush()
    mine, direct = out.getvalue().splitlines()
    # Byte for byte, but for the time stamp.
    assert mine.split('", ', 1)[1] == direct.split('", ', 1)[1]
    assert json.loads(mine)["msg"] == "http"


def test_access_line_without_the_direct_writer_logs_a_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        logs.AccessLine("http", method="GET", status=200).write(2.0, "rid-2")
    (line,) = caplog.records
    assert (line.method, line.status, line.duration_ms, line.request_id) == (  # type: ignore[attr-defined]
        "GET",
        200,
        2.0,
        "rid-2",
    )


def test_access_line_fixes_only_leading_fields() -> None:
    with pytest.raises(ValueError, match="service"):
        logs.AccessLine("rpc", method="/x.Y/Z", service="svc")


def test_text_line_carries_the_request_id_as_the_json_line_does() -> None:
    logs.begin_request("trace-8")
    scoped = logs.TextFormatter().format(record("http", 0.0, method="GET", status=200))
    own = logs.TextFormatter().format(record("http", 0.0, method="GET", request_id="own-1"))
    assert scoped.endswith("method=GET status=200 request_id=trace-8")
    assert own.endswith("method=GET request_id=own-1")
