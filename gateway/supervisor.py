"""``serve --workers N``: N gateway processes sharing the listen ports (SO_REUSEPORT).

One Python process runs on one core; this supervisor lets one host use all of them. Each
worker is a complete gateway (gRPC, HTTP bridge, sync worker) started as
``python -m gateway serve`` with ``CHAT_GATEWAY_REUSE_PORT=1``, so the kernel spreads
incoming connections across the workers. They share the registry, and the sync workers
claim pending orders through it with leases, so no order is processed twice.

The supervisor forwards SIGTERM/SIGINT to every worker and waits for them (each drains
gracefully). If a worker dies on its own, the supervisor stops the others and exits
non-zero, so the orchestrator (systemd, Kubernetes) restarts the whole set cleanly.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from gateway.config import Settings

logger = logging.getLogger(__name__)

STOP_GRACE_S = 30.0


def _port(addr: str) -> int:
    return int(addr.rpartition(":")[2])


def run_workers(settings: Settings, workers: int, *, dev: bool) -> int:
    """Start ``workers`` gateway processes and supervise them; returns the exit code."""
    if _port(settings.edge.grpc_addr) == 0 or _port(settings.edge.http_addr) == 0:
        logger.error("--workers needs fixed ports: port 0 would give each worker its own")
        return 2
    env = {**os.environ, "CHAT_GATEWAY_REUSE_PORT": "1"}
    args = [sys.executable, "-m", "gateway", "serve", *(["--dev"] if dev else [])]
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(workers):
            children.append(
                subprocess.Popen(args, env={**env, "CHAT_GATEWAY_WORKER_INDEX": str(index)})
            )
        logger.info("supervising %d workers: pids %s", workers, [c.pid for c in children])
        while True:
            codes = [child.poll() for child in children]
            if all(code is not None for code in codes):
                break
            if not stopping and any(code is not None for code in codes):
                logger.error("a worker exited on its own (codes %s): stopping the others", codes)
                stopping = True
                for child in children:
                    if child.poll() is None:
                        child.terminate()
            time.sleep(0.2)
    finally:
        deadline = time.monotonic() + STOP_GRACE_S
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = [child.returncode for child in children]
    logger.info("workers stopped: exit codes %s", codes)
    return 0 if all(code == 0 for code in codes) else 1
