"""Processes under test (the gateway with production settings, the Node peers), their CPU and
memory, and load-generator runs with the CPU they used."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jwt

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent / "peers"

# Production-shaped credentials made up for the run (never the dev profile's).
ORDER_KEY = "bench-order-service-key-" + "x" * 16
WEB_KEY = "bench-web-backend-key-" + "y" * 16
STREAM_KEY = "bench-stream-key"
STREAM_SECRET = "bench-stream-secret-" + "z" * 32
SESSION_SECRET = "bench-session-secret-" + "s" * 32
TOKEN_TTL_S = 86_400
ACCESS_LINES_ENV = {
    "CHAT_GATEWAY_LOG_LEVEL": "INFO",
    "CHAT_GATEWAY_LOG_FORMAT": "json",
    "CHAT_GATEWAY_ACCESS_LOG": "true",
}
"""Production's logging defaults: one JSON access line per RPC and HTTP request."""


def access_lines(log: Path) -> int:
    """How many access lines a gateway with :data:`ACCESS_LINES_ENV` wrote to ``log``."""
    with log.open("rb") as fh:
        return sum(1 for line in fh if b'"logger": "gateway.access"' in line)


def session_jwt(user_id: str = "buyer-42", lifetime_s: int = 3600) -> str:
    """A browser session JWT as TradeTrust's login would issue it."""
    now = int(time.time())
    return jwt.encode(
        {"sub": user_id, "iat": now, "exp": now + lifetime_s}, SESSION_SECRET, algorithm="HS256"
    )


def wait_port(port: int, timeout_s: float = 20.0) -> None:
    """Block until something accepts TCP connections on the loopback port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class Running:
    """A started process and its ports."""

    proc: subprocess.Popen[bytes]
    grpc_port: int = 0
    http_port: int = 0

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) of the process and its children so far."""
        ticks = 0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_kb(self) -> int:
        """Resident set size of the process and its children, in KiB."""
        pids = [self.proc.pid, *_children(self.proc.pid)]
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc, no subprocess: RSS is sampled often)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class PeakRss:
    """Samples a process tree's RSS every 0.2 s in the background; keeps the peak."""

    def __init__(self, target: Running) -> None:
        self.target, self.peak_kb, self._stop = target, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_kb = max(self.peak_kb, self.target.rss_kb())

    @contextmanager
    def sampling(self) -> Iterator[PeakRss]:
        """Sample while the block runs (and once more at its end)."""
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
            self.peak_kb = max(self.peak_kb, self.target.rss_kb())


def run_measured(args: Sequence[str], *, timeout_s: float) -> tuple[str, float]:
    """Run a load generator to its end; return its stdout and the CPU seconds (user +
    system, every thread) it used, from ``wait4`` (exact, unlike sampling /proc)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(list(args), stdout=out, stderr=err)
        deadline = time.monotonic() + timeout_s
        while True:  # bounded by the deadline
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise TimeoutError(f"{args[0]} still running after {timeout_s}s")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, list(args), stdout, stderr)
    return stdout, usage.ru_utime + usage.ru_stime


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextmanager
def gateway(
    workdir: Path,
    *,
    workers: int = 1,
    database: Path | str | None = None,
    extra_env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[Running]:
    """The gateway as production runs it (`python -m gateway serve`, no dev profile).

    Access lines are off (WARNING level) unless ``extra_env`` says otherwise; ``database`` is
    a SQLite file or a ``postgresql://`` URL; stdout and stderr go to ``log``."""
    grpc_port, http_port = free_port(), free_port()
    services = ";".join(
        [
            f"order-service:{hashlib.sha256(ORDER_KEY.encode()).hexdigest()}:"
            "EnsureOrderChannel,AuthorizeParticipant",
            f"web-backend:{hashlib.sha256(WEB_KEY.encode()).hexdigest()}:"
            "IssueToken,AuthorizeParticipant",
        ]
    )
    env = {
        **os.environ,
        "GETSTREAM_API_KEY": STREAM_KEY,
        "GETSTREAM_API_SECRET": STREAM_SECRET,
        "CHAT_GATEWAY_BACKEND": "local",
        "CHAT_GATEWAY_SERVICES": services,
        "CHAT_GATEWAY_SESSION_SECRET": SESSION_SECRET,
        "CHAT_GATEWAY_DATABASE_URL": _database_url(
            database or workdir / f"registry-{grpc_port}.db"
        ),
        "CHAT_GATEWAY_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
        "CHAT_GATEWAY_HTTP_ADDR": f"127.0.0.1:{http_port}",
        "CHAT_GATEWAY_LOG_LEVEL": "WARNING",
        # The bench measures throughput, not the per-user rate limit.
        "CHAT_GATEWAY_TOKEN_RATE_LIMIT": "1000000000",
        "CHAT_GATEWAY_TOKEN_RATE_BURST": "1000000000",
        **(extra_env or {}),
    }
    args = [sys.executable, "-m", "gateway", "serve"]
    if workers > 1:
        args += ["--workers", str(workers)]
    sink = open(log or workdir / f"gateway-{grpc_port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_port(grpc_port)
        wait_port(http_port)
        time.sleep(0.5 * workers)
        yield Running(proc, grpc_port, http_port)
    finally:
        _stop(proc)
        sink.close()


def _database_url(database: Path | str) -> str:
    text = str(database)
    return text if text.startswith("postgresql://") else f"sqlite:///{text}"


@contextmanager
def node_peer(name: str, workdir: Path) -> Iterator[Running]:
    """One of the Node peers (`seed` or `fast`) serving the token route."""
    if not (PEERS / "node_modules").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=PEERS,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "SESSION_SECRET": SESSION_SECRET,
        "STREAM_KEY": STREAM_KEY,
        "STREAM_SECRET": STREAM_SECRET,
        "TTL": str(TOKEN_TTL_S),
    }
    log = open(workdir / f"peer-{name}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["node", str(PEERS / f"{name}.js")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_port(port)
        yield Running(proc, http_port=port)
    finally:
        _stop(proc)
        log.close()
