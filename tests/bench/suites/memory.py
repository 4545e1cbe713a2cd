"""``rss``: the gateway's peak RSS after tokens for a million distinct users over HTTP.

One gateway (access lines off) is fed ``--rss-users`` distinct users' sessions by wrk, 64
connections, in slices of 250,000 (each slice's file holds a few more sessions than the
responses awaited, so none is sent twice); RSS is sampled every 0.2 s throughout and read
once more after the last response. Bounded by ``--rss-timeout`` seconds per slice.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tests.bench import procs, sessions
from tests.bench.suites.web import TOKEN_PATH
from tests.bench.wrk import wrk_count

SLICE = 250_000
SPARE = 1_000  # more than the connections: requests in flight when wrk stops


def distinct_users_rss(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    """Feed the distinct users, slice by slice; record the peak RSS and the final RSS."""
    served = non_200 = 0
    started = time.monotonic()
    sessions_file = work / "rss.sessions"
    with procs.gateway(work) as gw, procs.PeakRss(gw).sampling() as rss:
        url = f"http://127.0.0.1:{gw.http_port}{TOKEN_PATH}"
        rss_start = gw.rss_kb()
        for k in range(-(-args.rss_users // SLICE)):
            count = min(SLICE, args.rss_users - k * SLICE)
            sessions.write_sessions(sessions_file, sessions.distinct_users(f"m{k}-", count + SPARE))
            responses, bad = wrk_count(
                url,
                sessions_file,
                count,
                connections=64,
                workdir=work,
                timeout_s=args.rss_timeout,
            )
            served, non_200 = served + responses, non_200 + bad
        rss_end = gw.rss_kb()
    out["rss_users"] = {
        "users": served,
        "non_200": non_200,
        "rss_start_kb": rss_start,
        "rss_end_kb": rss_end,
        "peak_rss_kb": rss.peak_kb,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
