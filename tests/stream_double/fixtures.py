"""Pytest fixtures for the Stream double (imported by ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.stream_double import StreamDouble

STREAM_TEST_KEY = "double-api-key"
STREAM_TEST_SECRET = "double-api-secret-for-tests-only"


@pytest.fixture
async def stream_double() -> AsyncIterator[StreamDouble]:
    """A started Stream double on 127.0.0.1; stopped after the test."""
    double = StreamDouble(api_key=STREAM_TEST_KEY, api_secret=STREAM_TEST_SECRET)
    await double.start()
    try:
        yield double
    finally:
        await double.stop()


@pytest.fixture
def stream_env(stream_double: StreamDouble) -> dict[str, str]:
    """Environment for a stream-mode gateway on the double, with short timings.

    One Stream call may take 1 s, an RPC waits 0.6 s for Stream, the worker polls every
    50 ms, leases last 1 s and retries are at most 0.4 s apart, so tests take seconds.
    """
    return {
        "GETSTREAM_API_KEY": STREAM_TEST_KEY,
        "GETSTREAM_API_SECRET": STREAM_TEST_SECRET,
        "STREAM_CHAT_URL": stream_double.url,
        "CHAT_GATEWAY_STREAM_TIMEOUT": "1",
        "CHAT_GATEWAY_INLINE_SYNC_BUDGET": "0.6",
        "CHAT_GATEWAY_SYNC_POLL_INTERVAL": "0.05",
        "CHAT_GATEWAY_SYNC_LEASE": "1",
        "CHAT_GATEWAY_SYNC_BACKOFF_CAP": "0.4",
    }
