"""`make bench`: run the suites, write results/{latest.md,latest.json,bench.png}.

Production-shaped workloads first (HTTP distinct and returning users, gRPC over distinct
users and 1 M orders, new orders against a 50 ms Stream, RSS after a million users), then
the ceilings (one repeated request). Each figure is the median of interleaved rounds and
every ratio compares figures of the same run. ``--only SUITE…`` runs a subset; its results
go to results/tmp/ (ignored by git) unless ``--out`` says otherwise, so a quick iteration
does not overwrite the committed full run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench.loadgen import build_grpcload
from tests.bench.procs import REPO
from tests.bench.report import write_report
from tests.bench.suites import legacy, memory, new_orders, rpc, web

RESULTS = Path(__file__).resolve().parent / "results"
Suite = Callable[[argparse.Namespace, Path, dict[str, object]], None]
SUITES: dict[str, Suite] = {
    "http-distinct": web.distinct,
    "http-returning": web.returning,
    "grpc": rpc.realistic,
    "orders": new_orders.new_orders,
    "rss": memory.distinct_users_rss,
    "grpc-ceiling": rpc.ceiling,
    "http-ceiling": web.ceiling,
    "workers": legacy.workers,
    "scale": legacy.scale,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.bench")
    p.add_argument("--only", nargs="+", choices=list(SUITES), default=list(SUITES))
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="most rounds per table run again for CPU steal above 5 %%",
    )
    p.add_argument("--ceiling-rounds", type=int, default=1, help="rounds of the ceilings")
    p.add_argument("--orders", type=int, default=1_000_000, help="recorded orders (grpc)")
    p.add_argument(
        "--max-grpc-rps",
        type=int,
        default=20_000,
        help="gRPC bodies per run = this × (duration + warm-up)",
    )
    p.add_argument(
        "--max-http-rps", type=int, default=60_000, help="HTTP sessions per run = this × duration"
    )
    p.add_argument("--rss-users", type=int, default=1_000_000)
    p.add_argument("--rss-timeout", type=float, default=600, help="seconds per 250 k users")
    p.add_argument(
        "--registries",
        nargs="+",
        choices=["sqlite", "postgresql"],
        default=["sqlite", "postgresql"],
        help="registries of the orders suite",
    )
    p.add_argument("--scale", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--out", type=Path, help="results directory")
    p.add_argument("--note", default="", help="a line at the top of latest.md")
    return p


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--", "gateway") else ""
    return git("rev-parse", "--short", "HEAD") + dirty


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    args = _parser().parse_args()
    full = args.only == list(SUITES)
    results = args.out or (RESULTS if full else RESULTS / "tmp")
    results.mkdir(parents=True, exist_ok=True)
    build_grpcload()
    out: dict[str, object] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "note": args.note,
        "commit": _commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "cpus": os.cpu_count(),
        "loadavg_start": _loadavg(),
        "suites": args.only,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "retries": args.retries,
            "ceiling_rounds": args.ceiling_rounds,
        },
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chat-gateway-bench-") as tmp:
        for name in args.only:
            suite_started = time.monotonic()
            print(f"bench: {name} …", flush=True)  # noqa: T201
            work = Path(tmp) / name
            work.mkdir()
            SUITES[name](args, work, out)
            out[f"elapsed_s_{name}"] = round(time.monotonic() - suite_started, 1)
            (results / "latest.json").write_text(json.dumps(out, indent=2) + "\n")
    out["elapsed_s"] = round(time.monotonic() - started, 1)
    out["loadavg_end"] = _loadavg()
    write_report(out, results)
    print(f"bench: done in {out['elapsed_s']:.0f} s; see {results / 'latest.md'}")  # noqa: T201


if __name__ == "__main__":
    main()
