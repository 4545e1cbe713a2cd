"""A restartable `python -m gateway serve --dev` subprocess on fixed loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]


class GatewayProcess:
    """The dev-profile gateway as a real process; ``stop`` and ``start`` keep the ports and
    the SQLite file, so a restart is the same gateway coming back."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.addr = f"127.0.0.1:{self.grpc_port}"
        self.db_path = workdir / "r.db"
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
        }
        self.starts += 1
        self._log = open(self.workdir / f"gateway-{self.starts}.log", "wb")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--dev"],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self._wait_serving(timeout_s)

    def _wait_serving(self, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.addr) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(int(timeout_s / 0.05) + 1):
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise RuntimeError(f"gateway exited with {self._proc.returncode}: {self.log()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return time.monotonic()
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        raise TimeoutError(f"gateway at {self.addr} not SERVING after {timeout_s}s: {self.log()}")

    def stop(self) -> None:
        """SIGTERM (graceful stop), then wait until the port is closed."""
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
