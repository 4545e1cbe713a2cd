"""A call against a stalled server fails with DeadlineExceededError in about its deadline."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from tradetrust.chat.client import (
    AsyncChatGatewayClient,
    ChatGatewayClient,
    ClientOptions,
    DeadlineExceededError,
)

from tests.helpers.fake_gateway import FakeGateway

DEADLINE_S = 1.0


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A TCP listener on loopback that accepts connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        for _ in range(600):  # at most ~60 s
            if stop.is_set():
                return
            try:
                conn, _ = listener.accept()
                accepted.append(conn)
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


def assert_about(elapsed: float, configured: float) -> None:
    assert 0.9 * configured <= elapsed <= 3 * configured, (
        f"failed after {elapsed:.2f}s, deadline {configured}s"
    )


async def test_black_hole_server_hits_the_default_deadline(black_hole: str) -> None:
    options = ClientOptions(deadline_s=DEADLINE_S)
    async with AsyncChatGatewayClient(black_hole, "k", options=options) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError) as caught:
            await client.ensure_order_channel("o-1", "b", "s")
        elapsed = time.monotonic() - started
    assert caught.value.code.name == "DEADLINE_EXCEEDED"
    assert_about(elapsed, DEADLINE_S)
    print(f"\nblack hole: deadline {DEADLINE_S}s, failed after {elapsed:.3f}s")  # noqa: T201


def test_black_hole_server_sync_client(black_hole: str) -> None:
    options = ClientOptions(deadline_s=DEADLINE_S)
    with ChatGatewayClient(black_hole, "k", options=options) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            client.authorize_participant("o-1", "b")
        elapsed = time.monotonic() - started
    assert_about(elapsed, DEADLINE_S)


async def test_stalled_handler_hits_the_deadline(fake: FakeGateway) -> None:
    fake.stall_s = 30.0
    options = ClientOptions(deadline_s=DEADLINE_S)
    async with AsyncChatGatewayClient(fake.addr, "k", options=options) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            await client.issue_token("u")
        elapsed = time.monotonic() - started
    assert fake.attempts["IssueToken"] == 1  # the server saw it: not a connection problem
    assert_about(elapsed, DEADLINE_S)
    print(f"\nstalled handler: deadline {DEADLINE_S}s, failed after {elapsed:.3f}s")  # noqa: T201


async def test_per_call_timeout_overrides_the_default(fake: FakeGateway) -> None:
    fake.stall_s = 30.0
    async with AsyncChatGatewayClient(
        fake.addr, "k", options=ClientOptions(deadline_s=20.0)
    ) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            await client.authorize_participant("o-1", "b", timeout=0.5)
        assert_about(time.monotonic() - started, 0.5)


async def test_a_fast_answer_is_not_affected(fake: FakeGateway) -> None:
    fake.stall_s = 0.2
    options = ClientOptions(deadline_s=DEADLINE_S)
    async with AsyncChatGatewayClient(fake.addr, "k", options=options) as client:
        answer = await asyncio.wait_for(client.authorize_participant("o-1", "b"), 5)
    assert answer.allowed is False
