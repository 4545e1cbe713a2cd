"""Run the gateway as a real process (`python -m gateway serve --dev`), as `make run` does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def wait_serving(addr: str, timeout_s: float = 20.0) -> None:
    """Block until the gRPC health service at ``addr`` reports SERVING."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway at {addr} not SERVING after {timeout_s}s")
            time.sleep(0.1)


@contextmanager
def dev_gateway(tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Start the dev profile on free loopback ports; yields the gRPC address."""
    grpc_addr = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "CHAT_GATEWAY_GRPC_ADDR": grpc_addr,
        "CHAT_GATEWAY_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "CHAT_GATEWAY_DATABASE_URL": f"sqlite:///{tmp / 'registry.db'}",
        **(extra_env or {}),
    }
    log = open(tmp / "gateway.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--dev"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_serving(grpc_addr)
        yield grpc_addr
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
