"""Load generators: h2load for gRPC (pre-framed unary requests over h2c), wrk for HTTP."""

from __future__ import annotations

import re
import statistics
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message


@dataclass(frozen=True)
class Result:
    """One load run."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


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
) -> Result:
    """Unary gRPC load over one h2c connection with ``streams`` concurrent streams."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name)
    data = workdir / f"{slug}.bin"
    data.write_bytes(frame)
    log = workdir / f"{slug}-{streams}.h2load.log"
    log.unlink(missing_ok=True)  # h2load appends to an existing log
    args = [
        "h2load",
        "-c",
        "1",
        "-m",
        str(streams),
        "-D",
        str(duration_s),
        f"--warm-up-time={warmup_s}",
        "-d",
        str(data),
        f"--log-file={log}",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
    ]
    if key:
        args += ["-H", f"authorization: Bearer {key}"]
    args.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(
        args, capture_output=True, text=True, timeout=duration_s + warmup_s + 60, check=True
    ).stdout
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    counts = re.search(
        r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored",
        out,
    )
    assert counts is not None, out
    # h2load's log: start time (µs since epoch), HTTP status, request duration (µs).
    latencies = sorted(int(line.split()[2]) for line in log.read_text().splitlines() if line)
    return Result(
        name,
        rps,
        _pct(latencies, 50) / 1000,
        _pct(latencies, 99) / 1000,
        int(counts.group(2)) + int(counts.group(3)),
    )


_WRK_SCRIPT = """
local tokens = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do n = n + 1; tokens[n] = line end
end
request = function()
  local i = math.random(n)
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
"""


def wrk(
    name: str,
    url: str,
    *,
    sessions: list[str] | None,
    connections: int,
    duration_s: int,
    workdir: Path,
    threads: int = 1,
) -> Result:
    """HTTP/1.1 keep-alive load; with ``sessions``, each request carries a random one."""
    args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s", "--latency"]
    if sessions:
        tokens = workdir / f"{name}.sessions"
        tokens.write_text("\n".join(sessions) + "\n")
        script = workdir / "sessions.lua"
        script.write_text(_WRK_SCRIPT)
        args += ["-s", str(script), url, "--", str(tokens)]
    else:
        args.append(url)
    out = subprocess.run(
        args, capture_output=True, text=True, timeout=duration_s + 60, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _wrk_ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p99 = _wrk_ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    return Result(name, rps, p50, p99, errors)


def _wrk_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _pct(sorted_values: list[int], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(round(pct / 100 * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def median_result(results: list[Result]) -> Result:
    """The per-metric median of several rounds of the same run."""
    return Result(
        results[0].name,
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )
