"""``python -m gateway check-stream [--apply]`` against the Stream double."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from tests.helpers.processes import REPO, gateway_environ
from tests.stream_double import StreamDouble


async def _check_stream(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "check-stream",
        "--dev",
        *args,
        env=gateway_environ(env),
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _unready(double: StreamDouble) -> dict[str, Any]:
    """Turn read events and uploads off on ``messaging`` and allow PDFs for files (the
    double's image uploads allow every MIME type already): the app is not ready. Returns
    the ``messaging`` channel type."""
    messaging = double.channel_types["messaging"]
    messaging.update(read_events=False, uploads=False)
    double.app["file_upload_config"].update(
        allowed_mime_types=["application/pdf"], allowed_file_extensions=[".pdf"]
    )
    return messaging


async def test_check_reports_what_is_not_ready_and_changes_nothing(
    stream_double: StreamDouble, stream_env: dict[str, str]
) -> None:
    messaging = _unready(stream_double)
    code, out, _ = await _check_stream(stream_env)
    assert code == 1
    assert "NOT READY: channel type 'messaging' has read_events, uploads off" in out
    assert "NOT READY: app image_upload_config allows every MIME type" in out
    assert "NOT READY: app file_upload_config allows non-image MIME types" in out
    assert [c.method for c in stream_double.calls] == ["GET", "GET"]  # a check changes nothing
    assert messaging["read_events"] is False


async def test_apply_fixes_channel_type_and_uploads(
    stream_double: StreamDouble, stream_env: dict[str, str]
) -> None:
    messaging = _unready(stream_double)
    code, out, _ = await _check_stream(stream_env, "--apply")
    assert code == 0, out
    assert "fixed: channel type 'messaging': turned on read_events, uploads" in out
    assert messaging["read_events"] is True and messaging["uploads"] is True
    assert messaging["max_message_length"] == 5000  # sent back unchanged, as Stream requires
    for name in ("image_upload_config", "file_upload_config"):
        config = stream_double.app[name]
        assert config["allowed_mime_types"]
        assert all(m.startswith("image/") for m in config["allowed_mime_types"])
        assert ".jpg" in config["allowed_file_extensions"]
        assert ".pdf" not in config["allowed_file_extensions"]


async def test_after_apply_the_check_says_ready(
    stream_double: StreamDouble, stream_env: dict[str, str]
) -> None:
    _unready(stream_double)
    code, out, _ = await _check_stream(stream_env, "--apply")
    assert code == 0, out
    calls_before = len(stream_double.calls)
    code, out, _ = await _check_stream(stream_env)
    assert code == 0
    assert out.startswith("ready:")
    assert [c.method for c in stream_double.calls[calls_before:]] == ["GET", "GET"]


async def test_check_stream_reports_an_unreachable_stream(
    stream_double: StreamDouble, stream_env: dict[str, str]
) -> None:
    await stream_double.stop()
    code, _, err = await _check_stream(stream_env)
    assert code == 3
    assert "cannot check the Stream app" in err


async def test_check_stream_with_a_wrong_secret_fails_with_401(
    stream_double: StreamDouble, stream_env: dict[str, str]
) -> None:
    env = {**stream_env, "GETSTREAM_API_SECRET": "a-wrong-secret-that-is-long-enough-for-hs256"}
    code, _, err = await _check_stream(env)
    assert code == 3
    assert "HTTP 401" in err
    assert [c.status for c in stream_double.calls] == [401]
    assert stream_double.channel_types["messaging"]["read_events"] is True


async def test_check_stream_reports_a_missing_channel_type(
    stream_double: StreamDouble, stream_env: dict[str, str]
) -> None:
    env = {**stream_env, "CHAT_GATEWAY_CHANNEL_TYPE": "orders"}
    code, out, _ = await _check_stream(env, "--apply")
    assert code == 1
    assert "NOT READY: channel type 'orders' does not exist" in out
    assert [c.status for c in stream_double.calls][0] == 404
