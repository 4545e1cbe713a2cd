"""`make bench`: run every measurement, write tests/bench/results/{latest.md,latest.json,bench.png}.

Each figure is the median of interleaved rounds, compared with a baseline measured in the
same run on the same server (Health/Check for gRPC, /healthz for HTTP) and with the Node
peers, so machine noise cancels out of the ratios.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from grpc_health.v1 import health_pb2
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from tests.bench import procs
from tests.bench.loadgen import (
    Result,
    grpc_frame,
    grpc_status_of_sample,
    h2load,
    median_result,
    wrk,
)
from tests.bench.report import write_report
from tests.bench.scale import authorize_latency, populate_sqlite

RESULTS = Path(__file__).resolve().parent / "results"
SERVICE = "/tradetrust.chat.v1.ChatGateway"
BENCH_ORDER = pb.EnsureOrderChannelRequest(
    order_id="ord-bench",
    buyer=pb.Participant(user_id="buyer-42", display_name="Ana"),
    seller=pb.Participant(user_id="seller-7", display_name="Sam"),
)
GRPC_TARGETS: dict[str, tuple[str, bytes, str | None]] = {
    "Health/Check": (
        "/grpc.health.v1.Health/Check",
        grpc_frame(health_pb2.HealthCheckRequest()),
        None,
    ),
    "IssueToken": (
        f"{SERVICE}/IssueToken",
        grpc_frame(pb.IssueTokenRequest(user_id="buyer-42")),
        procs.WEB_KEY,
    ),
    "AuthorizeParticipant": (
        f"{SERVICE}/AuthorizeParticipant",
        grpc_frame(pb.AuthorizeParticipantRequest(order_id="ord-bench", user_id="buyer-42")),
        procs.ORDER_KEY,
    ),
    "EnsureOrderChannel (repeat)": (
        f"{SERVICE}/EnsureOrderChannel",
        grpc_frame(BENCH_ORDER),
        procs.ORDER_KEY,
    ),
}


class PeakRss:
    """Samples a process tree's RSS in the background; keeps the peak."""

    def __init__(self, target: procs.Running) -> None:
        self.target, self.peak_kb, self._stop = target, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_kb = max(self.peak_kb, self.target.rss_kb())

    @contextmanager
    def sampling(self) -> Iterator[PeakRss]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=5)


def rounds(n: int, runs: dict[str, Callable[[], Result]]) -> dict[str, Result]:
    """Run every entry once per round, interleaved, and keep per-metric medians."""
    collected: dict[str, list[Result]] = {name: [] for name in runs}
    for _ in range(n):
        for name, run in runs.items():
            collected[name].append(run())
    return {name: median_result(results) for name, results in collected.items()}


def grpc_suite(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    with procs.gateway(work) as gw, PeakRss(gw).sampling() as rss:
        seed = grpc_status_of_sample(
            gw.grpc_port, f"{SERVICE}/EnsureOrderChannel", grpc_frame(BENCH_ORDER), procs.ORDER_KEY
        )
        assert seed == "0", f"seeding the bench order failed: grpc-status {seed}"
        for name, (path, frame, key) in GRPC_TARGETS.items():
            status = grpc_status_of_sample(gw.grpc_port, path, frame, key)
            assert status == "0", f"{name}: sample grpc-status {status}"
        for streams in (64, 1):
            runs: dict[str, Callable[[], Result]] = {
                name: functools.partial(
                    h2load,
                    name,
                    gw.grpc_port,
                    path,
                    frame,
                    key,
                    streams=streams,
                    duration_s=args.duration,
                    warmup_s=args.warmup,
                    workdir=work,
                )
                for name, (path, frame, key) in GRPC_TARGETS.items()
            }
            out[f"grpc_{streams}"] = {k: asdict(v) for k, v in rounds(args.rounds, runs).items()}
        out["rss_grpc_kb"] = rss.peak_kb


def wrk_run(
    args: argparse.Namespace, work: Path, sessions: list[str], slug: str, url: str
) -> Callable[[], Result]:
    """One wrk run against ``url``: 64 connections, each request with one of ``sessions``."""
    return functools.partial(
        wrk, slug, url, sessions=sessions, connections=64, duration_s=args.duration, workdir=work
    )


def http_suite(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    sessions = [procs.session_jwt(f"user-{i}") for i in range(1000)]
    with (
        procs.gateway(work) as gw,
        procs.node_peer("seed", work) as seed,
        procs.node_peer("fast", work) as fast,
        PeakRss(gw).sampling() as rss,
    ):
        base, token_path = f"http://127.0.0.1:{gw.http_port}", "/api/chat/stream/token"
        runs = {
            # Same request generator (and its client-side cost) as the token runs.
            "gateway /healthz": wrk_run(args, work, sessions, "healthz", f"{base}/healthz"),
            "gateway token": wrk_run(args, work, sessions, "gw-token", base + token_path),
            "node fast token": wrk_run(
                args, work, sessions, "fast", f"http://127.0.0.1:{fast.http_port}{token_path}"
            ),
            "node seed token": wrk_run(
                args, work, sessions, "seed", f"http://127.0.0.1:{seed.http_port}{token_path}"
            ),
        }
        out["http"] = {k: asdict(v) for k, v in rounds(args.rounds, runs).items()}
        out["rss_http_kb"] = rss.peak_kb


def workers_suite(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    path, frame, key = GRPC_TARGETS["IssueToken"]
    sessions = [procs.session_jwt(f"user-{i}") for i in range(1000)]
    figures: dict[str, object] = {}
    for workers in (1, 2):
        cores: dict[str, list[float]] = {"gateway": [], "h2load": []}
        with procs.gateway(work, workers=workers) as gw, PeakRss(gw).sampling() as rss:
            # Several connections so the kernel spreads them over the workers' sockets.
            def grpc_run(gw: procs.Running = gw, cores: dict[str, list[float]] = cores) -> Result:
                started, gateway_cpu, h2load_cpu = time.monotonic(), gw.cpu_seconds(), _child_cpu()
                result = h2load_multi(gw.grpc_port, path, frame, key, args, work)
                elapsed = time.monotonic() - started
                cores["gateway"].append((gw.cpu_seconds() - gateway_cpu) / elapsed)
                cores["h2load"].append((_child_cpu() - h2load_cpu) / elapsed)
                return result

            def http_run(gw: procs.Running = gw) -> Result:
                url = f"http://127.0.0.1:{gw.http_port}/api/chat/stream/token"
                return wrk_run(args, work, sessions, "workers-token", url)()

            results = rounds(args.rounds, {"grpc": grpc_run, "http": http_run})
            figures[str(workers)] = {
                **asdict(results["grpc"]),
                "http_rps": results["http"].rps,
                "http_errors": results["http"].errors,
                "rss_kb": rss.peak_kb,
                # Average cores busy during the gRPC runs: the gateway's processes (every
                # thread) and the load generator, on the same machine.
                "grpc_gateway_cores": round(statistics.median(cores["gateway"]), 2),
                "grpc_h2load_cores": round(statistics.median(cores["h2load"]), 2),
            }
    out["workers"] = figures


def _child_cpu() -> float:
    """CPU seconds of this process's finished children (the load generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def h2load_multi(
    port: int, path: str, frame: bytes, key: str | None, args: argparse.Namespace, work: Path
) -> Result:
    data = work / "multi.bin"
    data.write_bytes(frame)
    cmd = [
        "h2load",
        "-c",
        "8",
        "-m",
        "16",
        "-D",
        str(args.duration),
        f"--warm-up-time={args.warmup}",
        "-d",
        str(data),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-H",
        f"authorization: Bearer {key}",
        f"http://127.0.0.1:{port}{path}",
    ]
    text = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=args.duration + args.warmup + 60
    ).stdout
    rps = float(re.search(r"([\d.]+) req/s", text).group(1))  # type: ignore[union-attr]
    failed = re.search(r"(\d+) failed, (\d+) errored", text)
    errors = int(failed.group(1)) + int(failed.group(2)) if failed else -1
    return Result("IssueToken", rps, float("nan"), float("nan"), errors)


def scale_suite(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    figures: dict[str, object] = {}
    for orders in args.scale:
        db = work / f"scale-{orders}.db"
        started = time.perf_counter()
        populate_sqlite(db, orders)
        populated_s = time.perf_counter() - started
        with procs.gateway(work, database=db) as gw, PeakRss(gw).sampling() as rss:
            result = authorize_latency(f"{orders}", gw.grpc_port, procs.ORDER_KEY, orders)
        figures[str(orders)] = {
            **asdict(result),
            "rss_kb": rss.peak_kb,
            "populate_s": round(populated_s, 1),
        }
        db.unlink()
    out["scale_sqlite"] = figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per gRPC run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median)")
    parser.add_argument("--scale", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--only", nargs="*", default=["grpc", "http", "workers", "scale"])
    args = parser.parse_args()
    out: dict[str, object] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}",
        "cpus": _cpus(),
        "settings": {"duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds},
    }
    suites = {
        "grpc": grpc_suite,
        "http": http_suite,
        "workers": workers_suite,
        "scale": scale_suite,
    }
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chat-gateway-bench-") as tmp:
        for name in args.only:
            started = time.perf_counter()
            suites[name](args, Path(tmp), out)
            out[f"{name}_elapsed_s"] = round(time.perf_counter() - started, 1)
            (RESULTS / "latest.json").write_text(json.dumps(out, indent=2))
    write_report(out, RESULTS)


def _cpus() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
