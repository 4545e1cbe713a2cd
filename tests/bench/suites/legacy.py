"""Today's other figures, kept as they were: ``workers`` (``serve --workers 1`` and ``2``, fixed
IssueToken over 8 h2c connections × 16 streams and the HTTP token route over 1,000 users'
sessions, with the cores the gateway and h2load kept busy) and ``scale`` (sequential
AuthorizeParticipant latency with 10 k, 100 k and 1 M recorded orders)."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from tests.bench import procs, sessions
from tests.bench.loadgen import Result, h2load
from tests.bench.rounds import rounds
from tests.bench.scale import authorize_latency, populate_sqlite
from tests.bench.suites.rpc import FIXED
from tests.bench.suites.web import TOKEN_PATH
from tests.bench.wrk import wrk


def workers(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    """One worker and two: gRPC IssueToken and HTTP token throughput, cores busy."""
    path, frame, key = FIXED["IssueToken"]
    users = work / "workers.sessions"
    sessions.write_sessions(users, sessions.distinct_users("user-", 1000))
    figures: dict[str, object] = {}
    for n in (1, 2):
        cores: list[float] = []
        with procs.gateway(work, workers=n) as gw, procs.PeakRss(gw).sampling() as rss:
            # Several connections so the kernel spreads them over the workers' sockets.
            def grpc_run(_: int, gw: procs.Running = gw, cores: list[float] = cores) -> Result:
                started, cpu = time.monotonic(), gw.cpu_seconds()
                result = h2load(
                    "IssueToken",
                    gw.grpc_port,
                    path,
                    frame,
                    key,
                    streams=16,
                    connections=8,
                    duration_s=args.duration,
                    warmup_s=args.warmup,
                    workdir=work,
                )
                cores.append((gw.cpu_seconds() - cpu) / (time.monotonic() - started))
                return result

            def http_run(_: int, gw: procs.Running = gw) -> Result:
                url = f"http://127.0.0.1:{gw.http_port}{TOKEN_PATH}"
                return wrk(
                    "token", url, users, connections=64, duration_s=args.duration, workdir=work
                )

            results = rounds(args.ceiling_rounds, {"grpc": grpc_run, "http": http_run})
        figures[str(n)] = {
            "grpc": asdict(results["grpc"]),
            "http": asdict(results["http"]),
            "rss_kb": rss.peak_kb,
            "grpc_gateway_cores": round(sorted(cores)[len(cores) // 2], 2),
        }
    out["workers"] = figures


def scale(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    """Sequential AuthorizeParticipant p50/p99 as the registry grows."""
    figures: dict[str, object] = {}
    for orders in args.scale:
        db = work / f"scale-{orders}.db"
        started = time.perf_counter()
        populate_sqlite(db, orders)
        populated_s = time.perf_counter() - started
        with procs.gateway(work, database=db) as gw, procs.PeakRss(gw).sampling() as rss:
            result = authorize_latency(f"{orders}", gw.grpc_port, procs.ORDER_KEY, orders)
        figures[str(orders)] = {
            **asdict(result),
            "rss_kb": rss.peak_kb,
            "populate_s": round(populated_s, 1),
        }
        db.unlink()
    out["scale_sqlite"] = figures
