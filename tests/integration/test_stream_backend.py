"""StreamChatBackend's error boundary, driven through the real SDK against the double."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from gateway.chat import ChatBackendError
from gateway.chat.stream import StreamChatBackend
from gateway.domain import OrderChannel, Participant
from tests.helpers.builders import order_channel
from tests.helpers.gateways import SettingsFactory
from tests.stream_double import StreamDouble


def _channel(order_id: str) -> OrderChannel:
    return order_channel(
        order_id, buyer=Participant("buyer-1", "Ana"), seller=Participant("seller-1", "Sam")
    )


@pytest.fixture
async def backend(
    make_settings: SettingsFactory, stream_env: dict[str, str]
) -> AsyncIterator[StreamChatBackend]:
    backend = await StreamChatBackend.open(make_settings(env=stream_env).stream)
    try:
        yield backend
    finally:
        await backend.close()


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_transient(
    backend: StreamChatBackend, stream_double: StreamDouble, status: int
) -> None:
    stream_double.inject(status)
    with pytest.raises(ChatBackendError) as failure:
        await backend.sync_channel(_channel("o-5xx"))
    assert failure.value.transient and failure.value.retry_after_s is None
    assert f"HTTP {status}" in str(failure.value)


@pytest.mark.parametrize("status", [400, 403])
async def test_4xx_is_permanent(
    backend: StreamChatBackend, stream_double: StreamDouble, status: int
) -> None:
    stream_double.inject(status)
    with pytest.raises(ChatBackendError) as failure:
        await backend.sync_channel(_channel("o-4xx"))
    assert not failure.value.transient


async def test_slowness_is_transient_and_bounded(
    backend: StreamChatBackend, stream_double: StreamDouble
) -> None:
    stream_double.delay_s = 5.0
    started = time.monotonic()
    with pytest.raises(ChatBackendError) as slow:
        await backend.sync_channel(_channel("o-slow"))
    assert slow.value.transient
    assert "no answer within 1s" in str(slow.value)  # the SDK's request timeout, mapped
    assert time.monotonic() - started < 1.5  # CHAT_GATEWAY_STREAM_TIMEOUT=1


async def test_outage_is_transient(backend: StreamChatBackend, stream_double: StreamDouble) -> None:
    await stream_double.stop()
    with pytest.raises(ChatBackendError) as down:
        await backend.sync_channel(_channel("o-down"))
    assert down.value.transient


async def test_429_gives_retry_after_from_reset_header(
    backend: StreamChatBackend, stream_double: StreamDouble
) -> None:
    reset = stream_double.rate_limit(1.0)
    with pytest.raises(ChatBackendError) as failure:
        await backend.sync_channel(_channel("o-429"))
    retry_after = failure.value.retry_after_s
    assert failure.value.transient and retry_after is not None
    assert reset - time.time() <= retry_after <= reset - time.time() + 0.2


async def test_after_a_429_nothing_is_sent_until_the_reset(
    backend: StreamChatBackend, stream_double: StreamDouble
) -> None:
    stream_double.rate_limit(1.0)
    with pytest.raises(ChatBackendError):
        await backend.sync_channel(_channel("o-429"))
    # Until the reset nothing is sent: the next call fails locally.
    with pytest.raises(ChatBackendError):
        await backend.sync_channel(_channel("o-429-b"))
    assert len(stream_double.calls) == 1


async def test_spent_window_on_a_success_holds_later_calls(
    backend: StreamChatBackend, stream_double: StreamDouble
) -> None:
    stream_double.remaining_override = 0  # answers succeed, but the window is spent
    with pytest.raises(ChatBackendError) as held:
        await backend.sync_channel(_channel("o-spent"))
    # upsert_users succeeded and said Remaining: 0, so the channel call was not sent.
    assert [c.path for c in stream_double.calls] == ["/users"]
    assert held.value.transient and (held.value.retry_after_s or 0) > 0
