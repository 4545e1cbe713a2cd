"""HTTP token workloads: wrk (64 connections, one thread) on the gateway's
``/api/chat/stream/token`` and on the two Node peers, which verify the same sessions with the
same secret and sign the same claims.

- ``http-distinct``: every request a different user's session, none repeated in the run
  (each round has its own users; the warm-up others again). Also on a second gateway with
  JSON access lines on (production's logging), for what the lines cost.
- ``http-returning``: users drawn from Zipf(1.1) over 100,000 users, each user always with
  the same session; the warm-up is another draw from the same population.
- ``http-ceiling``: today's figure, 1,000 users' sessions over and over (ceiling: one
  repeated request), with ``/healthz`` on the same server.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.bench import procs, sessions
from tests.bench.loadgen import Result
from tests.bench.rounds import rounds, with_server_cpu
from tests.bench.wrk import wrk

TOKEN_PATH = "/api/chat/stream/token"
ZIPF_S = 1.1
RETURNING_POPULATION = 100_000


def _runs(
    args: argparse.Namespace,
    work: Path,
    targets: dict[str, tuple[procs.Running, str]],
    files: list[Path],
    rounds_n: int,
) -> dict[str, dict[str, Any]]:
    """Interleaved rounds of wrk on each target (server, url); attempt ``r`` sends
    ``files[r]`` (a disturbed round is run again with the next file, while there is one)."""

    def run(name: str, url: str) -> Callable[[int], Result]:
        return lambda r: wrk(
            name, url, files[r], connections=64, duration_s=args.duration, workdir=work
        )

    runs = {
        name: with_server_cpu(server, run(name, url)) for name, (server, url) in targets.items()
    }
    return {
        name: asdict(result)
        for name, result in rounds(rounds_n, runs, retries=len(files) - rounds_n).items()
    }


def _warm(
    args: argparse.Namespace, work: Path, targets: dict[str, tuple[procs.Running, str]], warm: Path
) -> None:
    for name, (_, url) in targets.items():
        wrk(f"warm {name}", url, warm, connections=64, duration_s=args.warmup, workdir=work)


def _servers(
    stack: ExitStack, work: Path, *, json_lines: bool
) -> dict[str, tuple[procs.Running, str]]:
    """The gateway (access lines off), maybe a second one with JSON access lines on, and the
    fast and seed-style Node peers, each with its token URL."""
    gw = stack.enter_context(procs.gateway(work))
    targets = {"gateway": (gw, f"http://127.0.0.1:{gw.http_port}{TOKEN_PATH}")}
    if json_lines:
        gwj = stack.enter_context(
            procs.gateway(work, extra_env=procs.ACCESS_LINES_ENV, log=work / "http-json.log")
        )
        targets["gateway, JSON access lines"] = (
            gwj,
            f"http://127.0.0.1:{gwj.http_port}{TOKEN_PATH}",
        )
    for peer in ("fast", "seed"):
        node = stack.enter_context(procs.node_peer(peer, work))
        targets[f"node {peer} peer"] = (node, f"http://127.0.0.1:{node.http_port}{TOKEN_PATH}")
    return targets


def distinct(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    """Every request a different user's session."""
    sessions.check_against_pyjwt()
    per_run = int(args.max_http_rps * args.duration)
    warm = work / "distinct-warm.sessions"
    sessions.write_sessions(
        warm, sessions.distinct_users("dw-", int(args.max_http_rps * args.warmup))
    )
    files = []
    for r in range(args.rounds + args.retries):
        files.append(work / f"distinct-{r}.sessions")
        sessions.write_sessions(files[-1], sessions.distinct_users(f"d{r}-", per_run))
    with ExitStack() as stack:
        targets = _servers(stack, work, json_lines=True)
        rss = stack.enter_context(procs.PeakRss(targets["gateway"][0]).sampling())
        _warm(args, work, targets, warm)
        lines_before = procs.access_lines(work / "http-json.log")
        table = _runs(args, work, targets, files, args.rounds)
        lines = procs.access_lines(work / "http-json.log") - lines_before
    json_row = table["gateway, JSON access lines"]
    out["http_distinct"] = {
        "rows": table,
        "sessions_per_run": per_run,
        "rss_kb": rss.peak_kb,
        # Every request of the JSON gateway's rounds should have written one line.
        "access_lines_per_request": round(lines / max(1, json_row["extra"]["requests_total"]), 3),
    }


def returning(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    """Zipf(1.1) over 100,000 users, each with one session."""
    per_run = int(args.max_http_rps * args.duration)
    warm = work / "returning-warm.sessions"
    sessions.write_returning(
        warm, RETURNING_POPULATION, ZIPF_S, int(args.max_http_rps * args.warmup), seed=1000
    )
    files, draws = [], []
    for r in range(args.rounds + args.retries):
        files.append(work / f"returning-{r}.sessions")
        draws.append(
            sessions.write_returning(files[-1], RETURNING_POPULATION, ZIPF_S, per_run, seed=r)
        )
    with ExitStack() as stack:
        targets = _servers(stack, work, json_lines=False)
        rss = stack.enter_context(procs.PeakRss(targets["gateway"][0]).sampling())
        _warm(args, work, targets, warm)
        table = _runs(args, work, targets, files, args.rounds)
    out["http_returning"] = {
        "rows": table,
        "draws": draws,
        "population": RETURNING_POPULATION,
        "zipf_s": ZIPF_S,
        "rss_kb": rss.peak_kb,
    }


def ceiling(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    """Today's figure: 1,000 users' sessions over and over, and /healthz."""
    users = work / "ceiling.sessions"
    sessions.write_sessions(users, sessions.distinct_users("user-", 1000))
    with ExitStack() as stack:
        targets = _servers(stack, work, json_lines=False)
        gw = targets["gateway"][0]
        targets = {
            "gateway /healthz": (gw, f"http://127.0.0.1:{gw.http_port}/healthz"),
            **targets,
        }
        table = _runs(args, work, targets, [users] * args.ceiling_rounds, args.ceiling_rounds)
    out["http_ceiling"] = {"rows": table}
