"""HTTP/2 rapid reset (CVE-2023-44487) against the gRPC port, and a burst on one channel.

The attack, as reported: one connection without a service key sends HEADERS for a
ChatGateway method and RST_STREAM for the same stream at once, in a loop. Without
``grpc.max_concurrent_streams`` every reset stream still became a call the server set up
and tore down: 82–90 % of legitimate calls on other connections failed with CANCELLED and
the process grew from 129 to 362 MB over six 8-second runs, never giving it back.

Here a gateway process (``python -m gateway serve``) is attacked in rounds while clients on
their own connection keep calling ``IssueToken``; at least 90 % of their calls must succeed
and the process may grow by at most 60 MB over the rounds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from tests.helpers.h2raw import RapidReset, grpc_headers
from tests.helpers.processes import GatewayChild, GatewayChildren, child_env
from tests.helpers.rpc import GATEWAY_METHOD, WEB_BACKEND, bursting_channel, warmed

pytestmark = pytest.mark.slow

ROUNDS = 3
ROUND_S = 4.0
LEGIT_CLIENTS = 4
CALL_TIMEOUT_S = 2.0
MIN_SUCCESS = 0.90
MAX_RSS_GROWTH_MB = 60.0
BURST = 2000


def rss_mb(pid: int) -> float:
    """The resident set size of process ``pid``, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@dataclass
class Outcomes:
    """Statuses of the legitimate calls."""

    codes: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.codes.values())

    @property
    def success(self) -> float:
        return self.codes["OK"] / self.total if self.total else 0.0


async def legitimate_load(addr: str, until: float, outcomes: Outcomes) -> None:
    """``LEGIT_CLIENTS`` loops of IssueToken on their own connection until ``until``."""
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = pb_grpc.ChatGatewayStub(await warmed(channel))

        async def client(n: int) -> None:
            for i in range(100_000):  # bounded; the deadline ends it far sooner
                if time.monotonic() >= until:
                    return
                try:
                    await stub.IssueToken(
                        pb.IssueTokenRequest(user_id=f"user-{n}-{i % 50}"),
                        metadata=WEB_BACKEND,
                        timeout=CALL_TIMEOUT_S,
                    )
                    outcomes.codes["OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    outcomes.codes[exc.code().name] += 1

        await asyncio.gather(*(client(n) for n in range(LEGIT_CLIENTS)))


async def attacked_rounds(child: GatewayChild) -> tuple[Outcomes, list[float], int]:
    """Rounds of attack + legitimate load; returns the outcomes, RSS after each round and
    the streams the attacker opened and reset."""
    assert child.proc.pid is not None
    headers = grpc_headers(child.grpc_port, GATEWAY_METHOD + "IssueToken")  # no key
    outcomes = Outcomes()
    rss = [rss_mb(child.proc.pid)]
    streams = 0
    for _ in range(ROUNDS):
        attacker = RapidReset(child.grpc_port, headers)
        until = time.monotonic() + ROUND_S
        await asyncio.gather(
            attacker.run(ROUND_S), legitimate_load(child.grpc_addr, until, outcomes)
        )
        streams += attacker.stats.streams
        await asyncio.sleep(0.5)
        rss.append(rss_mb(child.proc.pid))
    return outcomes, rss, streams


@pytest.fixture
async def child(tmp_path: Path, gateway_children: GatewayChildren) -> GatewayChild:
    env = {"CHAT_GATEWAY_LOG_FORMAT": "json", "CHAT_GATEWAY_ACCESS_LOG": "false"}
    child = await gateway_children.start(child_env(tmp_path, env))
    # Warm up: the baseline RSS includes what serving at all costs.
    outcomes = Outcomes()
    await legitimate_load(child.grpc_addr, time.monotonic() + 1.0, outcomes)
    assert outcomes.success == 1.0, outcomes.codes
    return child


async def test_rapid_reset_leaves_legitimate_calls_and_memory_alone(child: GatewayChild) -> None:
    outcomes, rss, streams = await attacked_rounds(child)
    growth = rss[-1] - rss[0]
    async with aiohttp.ClientSession() as http, http.get(child.http_url + "/metrics") as r:
        seen = [
            line
            for line in (await r.text()).splitlines()
            if line.startswith("chat_gateway_rpcs_total") and 'code="OK"' not in line
        ]
    print(  # noqa: T201 - figures for the report (pytest -s)
        f"rapid reset: {streams} streams reset in {ROUNDS}x{ROUND_S:g}s; legitimate calls "
        f"{outcomes.total}, {outcomes.success:.1%} OK {dict(outcomes.codes)}; RSS "
        f"{' -> '.join(f'{r:.0f}' for r in rss)} MB (+{growth:.1f} MB); in the metrics: {seen}"
    )
    assert streams > 10_000, "the attack did not run"
    assert outcomes.total > 100
    assert outcomes.success >= MIN_SUCCESS, outcomes.codes
    assert growth <= MAX_RSS_GROWTH_MB, rss


async def test_a_burst_on_one_channel_is_not_cancelled(child: GatewayChild) -> None:
    # 2,000 calls at once on one (warmed) channel: the client keeps what the server's stream
    # limit does not admit yet queued, and retries a refused one; nothing is cancelled.
    async with bursting_channel(child.grpc_addr) as channel:
        stub = pb_grpc.ChatGatewayStub(await warmed(channel))
        calls = [
            stub.IssueToken(
                pb.IssueTokenRequest(user_id=f"burst-{n % 100}"), metadata=WEB_BACKEND, timeout=30
            )
            for n in range(BURST)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
    codes = Counter(
        r.code().name if isinstance(r, grpc.aio.AioRpcError) else type(r).__name__ for r in results
    )
    print(f"burst of {BURST} on one channel: {dict(codes)}")  # noqa: T201
    assert codes == Counter({"IssueTokenResponse": BURST})
