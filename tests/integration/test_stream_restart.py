"""Durability across a crash: ``python -m gateway serve`` as a real process on a SQLite file,
killed with SIGKILL while orders are pending (one Stream call in flight), then restarted.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from tests.conftest import ORDER_SERVICE
from tests.gateway_process import clean_env, logged_grpc_port, spawn
from tests.stream_double import StreamDouble


class GatewayProcess:
    """One ``python -m gateway serve --dev`` process and its log file."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path, port: int) -> None:
        self.proc = proc
        self.log = log
        self.port = port

    @classmethod
    async def start(cls, env: dict[str, str], log: Path) -> GatewayProcess:
        proc = await spawn(env, log, dev=True)
        port = await logged_grpc_port(proc, log, time.monotonic() + 20.0)
        if port:
            return cls(proc, log, port)
        proc.kill()
        await proc.wait()
        pytest.fail(f"gateway did not start:\n{log.read_text(errors='replace')}")

    async def stop(self, sig: int) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        async with asyncio.timeout(15):
            return await self.proc.wait()


@pytest.fixture
def process_env(stream_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return clean_env(
        {
            **stream_env,
            "CHAT_GATEWAY_GRPC_ADDR": "127.0.0.1:0",
            "CHAT_GATEWAY_HTTP_ADDR": "127.0.0.1:0",
            "CHAT_GATEWAY_LOG_LEVEL": "INFO",
        },
        tmp_path,
    )


@pytest.fixture
async def processes() -> AsyncIterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    try:
        yield started
    finally:
        for gw in started:
            if gw.proc.returncode is None:
                gw.proc.kill()
                await gw.proc.wait()


async def _sync_states(port: int, order_ids: list[str]) -> list[int]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        states: list[int] = []
        for order_id in order_ids:
            answer = await stub.AuthorizeParticipant(
                pb.AuthorizeParticipantRequest(order_id=order_id, user_id="buyer-1"),
                metadata=ORDER_SERVICE,
                timeout=5,
            )
            assert answer.allowed
            states.append(int(answer.channel.sync_state))
        return states


@pytest.mark.slow
async def test_sigkill_with_pending_orders_then_restart_syncs_all_once(
    stream_double: StreamDouble,
    process_env: dict[str, str],
    processes: list[GatewayProcess],
    tmp_path: Path,
) -> None:
    stream_double.channel_types["messaging"]["read_events"] = False
    await stream_double.stop()  # Stream is down while the orders come in
    first = await GatewayProcess.start(process_env, tmp_path / "first.log")
    processes.append(first)
    order_ids = [f"crash-{i}" for i in range(5)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        for order_id in order_ids:
            reply = await stub.EnsureOrderChannel(
                pb.EnsureOrderChannelRequest(
                    order_id=order_id,
                    buyer=pb.Participant(user_id="buyer-1", display_name="Ana"),
                    seller=pb.Participant(user_id=f"seller-{order_id}", display_name="Sam"),
                ),
                metadata=ORDER_SERVICE,
                timeout=3,
            )
            assert reply.created and reply.channel.sync_state == pb.SYNC_STATE_PENDING

    # Stream comes back but hangs: the worker's next attempt is in flight when we kill it.
    stream_double.delay_s = 30.0
    await stream_double.start()
    deadline = time.monotonic() + 10
    while not _in_flight(stream_double) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert _in_flight(stream_double), "the worker never reached Stream"
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

    stream_double.delay_s = 0.0
    stream_double.requests_seen = 0
    second = await GatewayProcess.start(process_env, tmp_path / "second.log")
    processes.append(second)
    deadline = time.monotonic() + 15
    states: list[int] = []
    while time.monotonic() < deadline:
        states = await _sync_states(second.port, order_ids)
        if all(s == pb.SYNC_STATE_SYNCED for s in states):
            break
        await asyncio.sleep(0.1)
    assert states == [pb.SYNC_STATE_SYNCED] * len(order_ids)

    expected = {f"messaging:order-{o}": ["buyer-1", f"seller-{o}"] for o in order_ids}
    assert {cid: sorted(ch.members) for cid, ch in stream_double.channels.items()} == expected
    assert stream_double.creations == dict.fromkeys(expected, 1)

    # The startup readiness check ran against the double and said what is wrong.
    log = second.log.read_text(errors="replace")
    assert "stream app not ready: channel type 'messaging' has read_events off" in log
    assert "GETSTREAM_API_SECRET" not in log and "double-api-secret" not in log
    assert await second.stop(signal.SIGTERM) == 0


def _in_flight(double: StreamDouble) -> bool:
    return double.requests_seen > 0
