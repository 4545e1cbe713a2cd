"""The container HEALTHCHECK probe (`python -m gateway.healthcheck`) against a real gateway."""

from __future__ import annotations

import asyncio

import pytest

from gateway import healthcheck
from gateway.app import Gateway
from tests.helpers.ports import free_port


@pytest.mark.parametrize(
    ("listen", "target"),
    [
        ("0.0.0.0:50051", "127.0.0.1:50051"),
        ("[::]:50051", "[::1]:50051"),
        ("127.0.0.1:6000", "127.0.0.1:6000"),
        ("gateway.internal:50051", "gateway.internal:50051"),
    ],
)
def test_probe_target_dials_loopback_for_wildcards(listen: str, target: str) -> None:
    assert healthcheck.probe_target(listen) == target


async def test_exits_0_when_serving(gateway: Gateway) -> None:
    argv = ["--addr", f"0.0.0.0:{gateway.grpc_port}"]
    assert await asyncio.to_thread(healthcheck.main, argv) == 0


async def test_exits_1_when_not_serving(gateway: Gateway) -> None:
    await gateway.grpc.set_serving(False)
    argv = ["--addr", f"127.0.0.1:{gateway.grpc_port}"]
    assert await asyncio.to_thread(healthcheck.main, argv) == 1


def test_exits_1_when_nothing_listens() -> None:
    # Nothing listens on a free port: the probe must fail fast, not hang.
    assert healthcheck.main(["--addr", f"127.0.0.1:{free_port()}", "--timeout", "1"]) == 1
