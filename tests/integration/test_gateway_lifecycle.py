"""``async with Gateway(settings)``: a failure at any start-up step leaves nothing behind.

Each step is made to fail in turn (the steps before it run for real). Afterwards no task,
thread or file descriptor the start opened is left, both ports can be bound again, and
the error reached the caller. A normal start and stop is checked the same way.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from gateway import app
from gateway.app import Gateway
from gateway.bridge.server import BridgeEdge
from gateway.rpc.server import GrpcEdge
from tests.helpers.gateways import SettingsFactory
from tests.helpers.ports import free_port


class StepFailed(Exception):
    """The failure injected into one start-up step."""


def _failing(real: Callable[..., Any]) -> Callable[..., Any]:
    if asyncio.iscoroutinefunction(real):

        async def fail_async(*args: Any, **kwargs: Any) -> Any:
            raise StepFailed(real.__name__)

        return fail_async

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise StepFailed(real.__name__)

    return fail


STEPS: dict[str, tuple[Any, str]] = {
    "open the registry": (app, "open_registry"),
    "open the chat backend": (app, "open_backend"),
    "prepare the gRPC server": (GrpcEdge, "__init__"),
    "build the HTTP bridge": (app, "build_bridge_edge"),
    "bind and serve gRPC": (GrpcEdge, "start"),
    "start serving HTTP": (BridgeEdge, "start"),
}


def _snapshot() -> tuple[set[asyncio.Task[Any]], set[threading.Thread], int]:
    return (
        asyncio.all_tasks(),
        set(threading.enumerate()),
        len(os.listdir("/proc/self/fd")),
    )


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _settle(before: tuple[set[asyncio.Task[Any]], set[threading.Thread], int]) -> None:
    """Wait (bounded) for threads that are shutting down to go, then compare."""
    for _ in range(50):
        now = _snapshot()
        if now[1] <= before[1] and now[2] <= before[2]:
            break
        await asyncio.sleep(0.05)


@pytest.fixture
async def warmed_up(make_settings: SettingsFactory) -> None:
    """One full start and stop first, so lazily created process-wide state (grpc's
    polling threads, the resolver) exists before the snapshots are taken."""
    async with Gateway(make_settings()):
        pass


@pytest.mark.usefixtures("warmed_up")
@pytest.mark.parametrize("step", list(STEPS))
async def test_a_failed_start_leaves_nothing_behind(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    grpc_port, http_port = free_port(), free_port()
    settings = make_settings(grpc_addr=f"127.0.0.1:{grpc_port}", http_addr=f"127.0.0.1:{http_port}")
    owner, name = STEPS[step]
    monkeypatch.setattr(owner, name, _failing(getattr(owner, name)))
    before = _snapshot()
    with pytest.raises(StepFailed):
        async with Gateway(settings):
            pytest.fail("the gateway started although a step failed")
    await _settle(before)
    tasks, threads, fds = _snapshot()
    assert tasks <= before[0], f"tasks left behind: {tasks - before[0]}"
    assert threads <= before[1], f"threads left behind: {threads - before[1]}"
    assert fds <= before[2], f"{fds - before[2]} file descriptors left open"
    assert _bindable(grpc_port) and _bindable(http_port)


@pytest.mark.usefixtures("warmed_up")
async def test_start_and_stop_leave_nothing_behind(make_settings: SettingsFactory) -> None:
    grpc_port, http_port = free_port(), free_port()
    settings = make_settings(grpc_addr=f"127.0.0.1:{grpc_port}", http_addr=f"127.0.0.1:{http_port}")
    before = _snapshot()
    async with Gateway(settings) as gateway:
        assert not _bindable(gateway.grpc_port) and not _bindable(gateway.http_port)
        assert any(t.get_name() == "sync-worker" for t in asyncio.all_tasks())
    await _settle(before)
    tasks, threads, fds = _snapshot()
    assert tasks <= before[0] and threads <= before[1] and fds <= before[2]
    assert _bindable(grpc_port) and _bindable(http_port)


async def test_a_gateway_cannot_be_started_twice(make_settings: SettingsFactory) -> None:
    async with Gateway(make_settings()) as gateway:
        with pytest.raises(RuntimeError, match="already started"):
            await gateway.start()
