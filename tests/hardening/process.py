"""``python -m gateway serve --dev`` as a child process of an asyncio test."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.gateway_process import REPO
from tests.ports import free_port


class GatewayChild:
    """A running gateway process, its ports and its log file."""

    def __init__(
        self, proc: asyncio.subprocess.Process, log: Path, grpc_port: int, http_port: int
    ) -> None:
        self.proc = proc
        self.log = log
        self.grpc_port = grpc_port
        self.http_port = http_port

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def lines(self) -> list[str]:
        """Every log line written so far."""
        return self.log.read_text(errors="replace").splitlines()

    def json_lines(self) -> list[dict[str, Any]]:
        """Every log line, parsed (each must be one JSON object)."""
        return [json.loads(line) for line in self.lines() if line.strip()]

    async def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout_s):
            return await self.proc.wait()


def clean_env(extra: dict[str, str], tmp: Path) -> dict[str, str]:
    """The test's environment without gateway settings, plus ``extra``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHAT_GATEWAY_", "GETSTREAM_", "STREAM_CHAT_"))
    }
    return {
        **base,
        "CHAT_GATEWAY_DATABASE_URL": f"sqlite:///{tmp / 'gateway.db'}",
        **extra,
    }


async def wait_serving(addr: str, proc: asyncio.subprocess.Process, timeout_s: float) -> None:
    """Until the health service at ``addr`` says SERVING (fails if the process exits)."""
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and proc.returncode is None:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"gateway at {addr} not SERVING within {timeout_s}s")


@asynccontextmanager
async def gateway_child(
    tmp: Path, env: dict[str, str], *, dev: bool = True
) -> AsyncIterator[GatewayChild]:
    """Start the gateway (dev profile unless ``dev=False``); kill it if still running."""
    grpc_port, http_port = free_port(), free_port()
    full_env = clean_env(
        {
            "CHAT_GATEWAY_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
            "CHAT_GATEWAY_HTTP_ADDR": f"127.0.0.1:{http_port}",
            **env,
        },
        tmp,
    )
    log = tmp / f"gateway-{grpc_port}.log"
    args = [sys.executable, "-m", "gateway", "serve", *(["--dev"] if dev else [])]
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            *args,
            env=full_env,
            cwd=REPO,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    child = GatewayChild(proc, log, grpc_port, http_port)
    try:
        try:
            await wait_serving(child.grpc_addr, proc, 30.0)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{log.read_text(errors='replace')}") from exc
        yield child
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
