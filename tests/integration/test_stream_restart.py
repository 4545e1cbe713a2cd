"""Durability across a crash: ``python -m gateway serve`` as a real process on a SQLite file,
killed with SIGKILL while orders are pending (one Stream call in flight), then restarted.
"""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from tests.helpers.builders import ensure_request, participant
from tests.helpers.polling import eventually
from tests.helpers.processes import GatewayChildren, child_env
from tests.helpers.rpc import ORDER_SERVICE
from tests.stream_double import StreamDouble


@pytest.fixture
def process_env(stream_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return child_env(tmp_path, {**stream_env, "CHAT_GATEWAY_LOG_LEVEL": "INFO"})


async def _sync_states(addr: str, order_ids: list[str]) -> list[int]:
    async with grpc.aio.insecure_channel(addr) as channel:
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
    gateway_children: GatewayChildren,
) -> None:
    stream_double.channel_types["messaging"]["read_events"] = False
    await stream_double.stop()  # Stream is down while the orders come in
    first = await gateway_children.start(process_env, name="first")
    order_ids = [f"crash-{i}" for i in range(5)]
    async with grpc.aio.insecure_channel(first.grpc_addr) as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        for order_id in order_ids:
            reply = await stub.EnsureOrderChannel(
                ensure_request(
                    order_id,
                    participant("buyer-1", "Ana"),
                    participant(f"seller-{order_id}", "Sam"),
                ),
                metadata=ORDER_SERVICE,
                timeout=3,
            )
            assert reply.created and reply.channel.sync_state == pb.SYNC_STATE_PENDING

    # Stream comes back but hangs: the worker's next attempt is in flight when we kill it.
    stream_double.delay_s = 30.0
    await stream_double.start()
    await eventually(
        lambda: stream_double.requests_seen > 0,
        timeout_s=10,
        message="the worker never reached Stream",
    )
    assert await first.kill() == -signal.SIGKILL

    stream_double.delay_s = 0.0
    stream_double.requests_seen = 0
    second = await gateway_children.start(process_env, name="second")
    states: list[int] = []

    async def all_synced() -> bool:
        states[:] = await _sync_states(second.grpc_addr, order_ids)
        return states == [pb.SYNC_STATE_SYNCED] * len(order_ids)

    await eventually(
        all_synced, timeout_s=15, interval_s=0.1, message=lambda: f"sync states {states}"
    )

    expected = {f"messaging:order-{o}": ["buyer-1", f"seller-{o}"] for o in order_ids}
    assert {cid: sorted(ch.members) for cid, ch in stream_double.channels.items()} == expected
    assert stream_double.creations == dict.fromkeys(expected, 1)

    # The startup readiness check ran against the double and said what is wrong.
    log = second.text()
    assert "stream app not ready: channel type 'messaging' has read_events off" in log
    assert "GETSTREAM_API_SECRET" not in log and "double-api-secret" not in log
    assert await second.terminate() == 0
