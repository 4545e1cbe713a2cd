"""The gateway as a real process (`python -m gateway serve --dev`, as `make run` starts it),
for tests that need the real entry point: a restartable :class:`GatewayProcess` and the
:func:`dev_gateway` context manager. (Asyncio tests use ``tests.hardening.process``.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

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
