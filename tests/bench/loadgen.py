"""gRPC load generators: ``grpcload`` (bodies vary) and ``h2load`` (one fixed body).

``grpcload`` (``grpcload.c``, built here with gcc on Debian's libnghttp2) sends the bodies of
a file of pre-framed requests in order, checks every response's ``grpc-status`` and reports
its own CPU use. Why not several ``h2load`` processes over pre-framed bodies: an h2load
process sends one body only, so N bodies need N processes (or connections), each with its
own event loop and CPU cost, none checks ``grpc-status`` (a failed RPC is an HTTP 200), and
the bodies would be spread over processes instead of sent in the drawn order. h2load stays
for the ceiling rows (one repeated request), and its Health/Check figure is the sanity check
of grpcload: both on the same server and request should give about the same req/s.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import Message

from tests.bench.procs import REPO, run_measured

GRPCLOAD_SOURCE = Path(__file__).resolve().parent / "grpcload.c"
GRPCLOAD = REPO / "build" / "bench" / "grpcload"
NAN = float("nan")


@dataclass(frozen=True)
class Result:
    """One load run (or the per-metric median of several)."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    p90_ms: float = NAN
    requests: int = 0
    loadgen: str = ""
    loadgen_cpu_s: float = NAN
    """CPU seconds the load generator used during the measured window."""
    loadgen_cores: float = NAN
    """Those seconds over the window's length: cores the load generator kept busy."""
    wraps: int = 0
    """How often the generator ran out of bodies and started over (0: none repeated)."""
    extra: dict[str, object] = field(default_factory=dict)


def grpc_frame(message: Message) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    body = message.SerializeToString()
    return b"\x00" + struct.pack(">I", len(body)) + body


def grpc_status_of_sample(port: int, path: str, frame: bytes, key: str | None) -> str:
    """Send one pre-framed request with curl and return its ``grpc-status`` trailer."""
    with tempfile.NamedTemporaryFile(suffix=".bin") as fh:
        fh.write(frame)
        fh.flush()
        args = [
            "curl",
            "-s",
            "-v",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "--data-binary",
            f"@{fh.name}",
            f"http://127.0.0.1:{port}{path}",
        ]
        if key:
            args[2:2] = ["-H", f"authorization: Bearer {key}"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    match = re.search(r"grpc-status: (\d+)", out.stderr)
    return match.group(1) if match else "missing"


def build_grpcload() -> Path:
    """Compile grpcload.c into build/bench (ignored by git) unless the binary is current."""
    if GRPCLOAD.exists() and GRPCLOAD.stat().st_mtime >= GRPCLOAD_SOURCE.stat().st_mtime:
        return GRPCLOAD
    GRPCLOAD.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(GRPCLOAD), str(GRPCLOAD_SOURCE), "-lnghttp2"],
        check=True,
        timeout=120,
    )
    return GRPCLOAD


def grpcload(
    name: str,
    port: int,
    path: str,
    frames: Path,
    key: str | None,
    *,
    streams: int,
    duration_s: int,
    warmup_s: int,
    connections: int = 1,
) -> Result:
    """Unary gRPC load over ``connections`` h2c connections × ``streams`` streams, sending
    the bodies of ``frames`` in order."""
    args = [
        str(build_grpcload()),
        *("-p", str(port), "-P", path, "-f", str(frames)),
        *("-c", str(connections), "-m", str(streams)),
        *("-d", str(duration_s), "-w", str(warmup_s)),
    ]
    if key:
        args += ["-a", f"Bearer {key}"]
    out, _ = run_measured(args, timeout_s=duration_s + warmup_s + 60)
    r = json.loads(out)
    return Result(
        name,
        r["rps"],
        r["p50_ms"],
        r["p99_ms"],
        r["errors"],
        p90_ms=r["p90_ms"],
        requests=r["requests"],
        loadgen="grpcload",
        loadgen_cpu_s=r["cpu_s"],
        loadgen_cores=r["cpu_s"] / duration_s,
        wraps=r["wraps"],
        extra={
            k: r[k]
            for k in ("grpc_errors", "first_error", "bodies", "sent", "connection_errors")
            if r.get(k)
        },
    )


def h2load(
    name: str,
    port: int,
    path: str,
    frame: bytes,
    key: str | None,
    *,
    streams: int,
    duration_s: int,
    warmup_s: int,
    workdir: Path,
    connections: int = 1,
) -> Result:
    """Unary gRPC load with one repeated body; h2load cannot see ``grpc-status`` (callers
    check a sample with :func:`grpc_status_of_sample`). CPU: what h2load used in all,
    warm-up included, so its cores are over warm-up + window."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name)
    data = workdir / f"{slug}.bin"
    data.write_bytes(frame)
    log = workdir / f"{slug}-{streams}.h2load.log"
    log.unlink(missing_ok=True)  # h2load appends to an existing log
    args = [
        "h2load",
        *("-c", str(connections), "-m", str(streams)),
        *("-D", str(duration_s), f"--warm-up-time={warmup_s}"),
        *("-d", str(data), f"--log-file={log}"),
        *("-H", "content-type: application/grpc", "-H", "te: trailers"),
    ]
    if key:
        args += ["-H", f"authorization: Bearer {key}"]
    args.append(f"http://127.0.0.1:{port}{path}")
    out, cpu_s = run_measured(args, timeout_s=duration_s + warmup_s + 60)
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    counts = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored",
        out,
    )
    assert counts is not None, out
    # h2load's log: start time (µs since epoch), HTTP status, request duration (µs).
    latencies = sorted(int(line.split()[2]) for line in log.read_text().splitlines() if line)
    return Result(
        name,
        rps,
        pct(latencies, 50) / 1000,
        pct(latencies, 99) / 1000,
        int(counts.group(3)) + int(counts.group(4)),
        p90_ms=pct(latencies, 90) / 1000,
        requests=int(counts.group(1)),
        loadgen="h2load",
        loadgen_cpu_s=cpu_s,
        loadgen_cores=cpu_s / (duration_s + warmup_s),
    )


def pct(sorted_values: list[int] | list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of already sorted values; NaN if none."""
    if not sorted_values:
        return NAN
    index = min(len(sorted_values) - 1, int(round(pct / 100 * (len(sorted_values) - 1))))
    return float(sorted_values[index])
