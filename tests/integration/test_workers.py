"""`serve --workers 2`: two processes share the ports and both take connections."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from tests.helpers.polling import eventually
from tests.helpers.ports import free_port
from tests.helpers.processes import REPO, wait_serving
from tests.helpers.rpc import WEB_BACKEND

pytestmark = pytest.mark.slow


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


async def start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    grpc_port = free_port()
    env = {
        **os.environ,
        "CHAT_GATEWAY_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
        "CHAT_GATEWAY_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "CHAT_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--dev", "--workers", "2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await eventually(
            lambda: len(children_of(proc.pid)) == 2,
            timeout_s=20,
            interval_s=0.1,
            message="two workers expected",
        )
        await asyncio.to_thread(wait_serving, f"127.0.0.1:{grpc_port}")
        await asyncio.sleep(1.0)  # both workers bound (the first SERVING may come from either)
    except BaseException:
        for worker in children_of(proc.pid):
            os.kill(worker, signal.SIGKILL)
        proc.kill()
        proc.wait(timeout=10)
        raise
    return proc, grpc_port


async def test_two_workers_share_the_port_and_stop_cleanly(tmp_path: Path) -> None:
    proc, port = await start(tmp_path)
    workers = set(children_of(proc.pid))
    channels = []
    try:
        for i in range(24):
            channel = grpc.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
            )
            channels.append(channel)
            reply = pb_grpc.ChatGatewayStub(channel).IssueToken(
                pb.IssueTokenRequest(user_id=f"u{i}"), metadata=WEB_BACKEND, timeout=10
            )
            assert reply.user_id == f"u{i}"
        sockets = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        serving = {int(p) for p in re.findall(r"pid=(\d+)", sockets)}
        assert serving == workers, f"connections spread over {serving}, workers {workers}"
    finally:
        for channel in channels:
            channel.close()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 40)
    assert code == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


async def test_a_dead_worker_stops_the_set(tmp_path: Path) -> None:
    proc, _ = await start(tmp_path)
    try:
        victim, survivor = children_of(proc.pid)
        os.kill(victim, signal.SIGKILL)
        code = await asyncio.to_thread(proc.wait, 40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 1
    await eventually(lambda: not Path(f"/proc/{survivor}").exists(), timeout_s=5, interval_s=0.1)
