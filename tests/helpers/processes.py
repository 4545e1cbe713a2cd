"""The gateway as a real process (`python -m gateway serve`, as `make run` starts it), for
tests that need the real entry point.

- From blocking code: a restartable :class:`GatewayProcess`, and :func:`dev_gateway`.
- From asyncio tests: the ``gateway_children`` fixture (registered by ``tests/conftest.py``)
  starts :class:`GatewayChild` processes and stops whatever still runs after the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers.polling import eventually
from tests.helpers.ports import free_port

REPO = Path(__file__).resolve().parents[2]


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


# -- asyncio: gateways as child processes of an async test -----------------------------------

_HOST = r"(?:\[[^\]]*\]|[^\s:\"]*)"  # 127.0.0.1, a name or [::1]; never past the port
GRPC_SERVING_LINE = re.compile(rf"gateway serving grpc={_HOST}:(\d+)")
"""The log line a started gateway writes, with its bound gRPC port (for port 0)."""
HTTP_SERVING_LINE = re.compile(rf"http bridge serving http={_HOST}:(\d+)")
"""The log line with the bound HTTP bridge port."""
STARTUP_TIMEOUT_S = 30.0


def gateway_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any gateway or Stream setting, plus ``extra``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHAT_GATEWAY_", "GETSTREAM_", "STREAM_CHAT"))
    }
    return {**base, **(extra or {})}


def child_env(tmp: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A child gateway's environment: nothing inherited, SQLite in ``tmp``, free loopback
    ports (port 0), then ``extra``."""
    return gateway_environ(
        {
            "CHAT_GATEWAY_DATABASE_URL": f"sqlite:///{tmp / 'gateway.db'}",
            "CHAT_GATEWAY_GRPC_ADDR": "127.0.0.1:0",
            "CHAT_GATEWAY_HTTP_ADDR": "127.0.0.1:0",
            **(extra or {}),
        }
    )


async def spawn(
    env: dict[str, str],
    log: Path,
    *,
    dev: bool,
    preexec_fn: Callable[[], None] | None = None,
) -> asyncio.subprocess.Process:
    """``python -m gateway serve`` (``--dev`` if ``dev``) with ``env``, output to ``log``;
    ``preexec_fn`` runs in the child before the gateway (e.g. to lower a resource limit)."""
    args = [sys.executable, "-m", "gateway", "serve", *(["--dev"] if dev else [])]
    with log.open("wb") as sink:
        return await asyncio.create_subprocess_exec(
            *args,
            env=env,
            cwd=REPO,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            preexec_fn=preexec_fn,
        )


class GatewayChild:
    """A ``python -m gateway serve`` child process, its log file and its bound ports (known
    once :meth:`wait_serving` returned)."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log
        self.grpc_port = 0
        self.http_port = 0

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def text(self) -> str:
        """The whole log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def lines(self) -> list[str]:
        """Every log line written so far."""
        return self.text().splitlines()

    def json_lines(self) -> list[dict[str, Any]]:
        """Every log line, parsed (each must be one JSON object)."""
        return [json.loads(line) for line in self.lines() if line.strip()]

    def log_tail(self, lines: int = 25) -> str:
        """The end of the log, for failure messages."""
        return f"--- {self.name} log ---\n" + "\n".join(self.lines()[-lines:])

    def _alive(self) -> None:
        if self.proc.returncode is not None:
            pytest.fail(f"{self.name} exited with status {self.proc.returncode}\n{self.log_tail()}")

    def _logged_ports(self) -> bool:
        self._alive()
        text = self.text()
        grpc_line = GRPC_SERVING_LINE.search(text)
        if grpc_line is None:
            return False
        http_line = HTTP_SERVING_LINE.search(text)
        self.grpc_port = int(grpc_line.group(1))
        self.http_port = int(http_line.group(1)) if http_line else 0
        return True

    async def wait_serving(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Until the gateway has logged its bound ports and its health service says
        SERVING; fails the test (with the log's tail) if it exits or takes longer."""
        deadline = time.monotonic() + timeout_s
        await eventually(
            self._logged_ports,
            timeout_s=timeout_s,
            message=lambda: f"{self.name} did not start\n{self.log_tail()}",
        )
        async with grpc.aio.insecure_channel(self.grpc_addr) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def serving() -> bool:
                self._alive()
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                except grpc.aio.AioRpcError:
                    return False
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

            await eventually(
                serving,
                timeout_s=max(deadline - time.monotonic(), 1.0),
                message=lambda: f"{self.name} not SERVING\n{self.log_tail()}",
            )

    async def signal(self, sig: int, timeout_s: float = 30.0) -> int:
        """Send ``sig`` (unless it has exited), then wait for the exit status."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        async with asyncio.timeout(timeout_s):
            return await self.proc.wait()

    async def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (a graceful stop), then the exit status."""
        return await self.signal(signal.SIGTERM, timeout_s)

    async def kill(self) -> int:
        """SIGKILL, like a crashed machine; returns the exit status."""
        return await self.signal(signal.SIGKILL, 10.0)

    async def stop(self) -> None:
        """SIGTERM; SIGKILL if it has not exited within a few seconds (cleanup)."""
        try:
            await self.terminate(timeout_s=5.0)
        except TimeoutError:
            await self.kill()


class GatewayChildren:
    """Starts gateway processes for one test (logs in its ``workdir``)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[GatewayChild] = []

    async def spawn(
        self,
        env: dict[str, str],
        *,
        dev: bool = True,
        name: str = "",
        preexec_fn: Callable[[], None] | None = None,
    ) -> GatewayChild:
        """Start a gateway process, without waiting for it (see
        :meth:`GatewayChild.wait_serving`); ``preexec_fn`` as for :func:`spawn`."""
        name = name or f"gateway-{len(self.started) + 1}"
        log = self.workdir / f"{name}.log"
        child = GatewayChild(name, await spawn(env, log, dev=dev, preexec_fn=preexec_fn), log)
        self.started.append(child)
        return child

    async def start(
        self,
        env: dict[str, str],
        *,
        dev: bool = True,
        name: str = "",
        preexec_fn: Callable[[], None] | None = None,
    ) -> GatewayChild:
        """Start a gateway process and wait until it serves."""
        child = await self.spawn(env, dev=dev, name=name, preexec_fn=preexec_fn)
        await child.wait_serving()
        return child

    async def stop_all(self) -> None:
        """Stop every child still running, all at once."""
        await asyncio.gather(*(c.stop() for c in self.started), return_exceptions=True)


@pytest.fixture
async def gateway_children(tmp_path: Path) -> AsyncIterator[GatewayChildren]:
    """Gateway processes of the test's own; whatever still runs afterwards is stopped."""
    children = GatewayChildren(tmp_path)
    try:
        yield children
    finally:
        await children.stop_all()
