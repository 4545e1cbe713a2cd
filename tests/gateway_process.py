"""The gateway as a real process (`python -m gateway serve`, as `make run` starts it), for
tests that need the real entry point: from blocking code a restartable
:class:`GatewayProcess` and :func:`dev_gateway`; from asyncio tests :func:`spawn`,
:func:`logged_grpc_port` and :func:`gateway_child`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[1]


def wait_serving(
    addr: str, timeout_s: float = 20.0, *, exited: Callable[[], str | None] = lambda: None
) -> float:
    """Block until the gRPC health service at ``addr`` reports SERVING; returns when
    (monotonic). ``exited`` returns a message once the process died (checked each try)."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(int(timeout_s / 0.05) + 1):
            message = exited()
            if message is not None:
                raise RuntimeError(message)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic()
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    raise TimeoutError(f"gateway at {addr} not SERVING after {timeout_s}s")


class GatewayProcess:
    """The dev-profile gateway as a real process; ``stop`` and ``start`` keep the ports and
    the SQLite file, so a restart is the same gateway coming back."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.addr = f"127.0.0.1:{self.grpc_port}"
        self.db_path = workdir / "r.db"
        self._extra_env = extra_env or {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    def start(self, timeout_s: float = 20.0) -> float:
        """Start and wait until health says SERVING; returns when that was (monotonic)."""
        assert self._proc is None, "already running"
        env = {
            **os.environ,
            "CHAT_GATEWAY_GRPC_ADDR": self.addr,
            "CHAT_GATEWAY_HTTP_ADDR": f"127.0.0.1:{self.http_port}",
            "CHAT_GATEWAY_DATABASE_URL": f"sqlite:///{self.db_path}",
            **self._extra_env,
        }
        self.starts += 1
        self._log = open(self.workdir / f"gateway-{self.starts}.log", "wb")  # noqa: SIM115
        proc = self._proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--dev"],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

        def exited() -> str | None:
            code = proc.poll()
            return None if code is None else f"gateway exited with {code}: {self.log()}"

        try:
            return wait_serving(self.addr, timeout_s, exited=exited)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}: {self.log()}") from exc

    def stop(self) -> None:
        """SIGTERM (graceful stop), then wait until the process is gone."""
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        """Every log line written so far (for failure messages)."""
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("gateway-*.log"))
        )[-4000:]


@contextmanager
def dev_gateway(tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Start the dev profile on free loopback ports; yields the gRPC address."""
    gateway = GatewayProcess(tmp, extra_env)
    gateway.start()
    try:
        yield gateway.addr
    finally:
        gateway.stop()


# -- asyncio: the gateway as a child process of an async test -------------------------------

SERVING_LINE = re.compile(r"gateway serving grpc=127\.0\.0\.1:(\d+)")
"""The log line a started gateway writes, with its bound gRPC port (for port 0)."""


async def spawn(env: dict[str, str], log: Path, *, dev: bool) -> asyncio.subprocess.Process:
    """``python -m gateway serve`` (``--dev`` if ``dev``) with ``env``, output to ``log``."""
    args = [sys.executable, "-m", "gateway", "serve", *(["--dev"] if dev else [])]
    with log.open("wb") as sink:
        return await asyncio.create_subprocess_exec(
            *args, env=env, cwd=REPO, stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=sink
        )


async def logged_grpc_port(proc: asyncio.subprocess.Process, log: Path, deadline: float) -> int:
    """The gRPC port from the gateway's "serving" log line; 0 if the process exited or
    ``deadline`` (monotonic) passed first."""
    while time.monotonic() < deadline:
        match = SERVING_LINE.search(log.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    return 0


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


async def wait_serving_async(addr: str, proc: asyncio.subprocess.Process, timeout_s: float) -> None:
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
    proc = await spawn(full_env, log, dev=dev)
    child = GatewayChild(proc, log, grpc_port, http_port)
    try:
        try:
            await wait_serving_async(child.grpc_addr, proc, 30.0)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{log.read_text(errors='replace')}") from exc
        yield child
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
