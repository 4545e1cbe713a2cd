"""gRPC workloads: grpcload (bodies vary), 1 h2c connection × 64 streams.

- ``grpc``: one gateway on a SQLite registry of 1 M recorded (synced) orders:
  ``Health/Check`` (the baseline, same generator), ``IssueToken`` for distinct users (none
  repeated in the run), ``AuthorizeParticipant`` for uniformly random orders
  among the 1 M, repeat ``EnsureOrderChannel`` for uniformly random orders among the first
  100,000; and ``IssueToken`` for distinct users on a second gateway with JSON access lines
  on, for what the lines cost.
- ``grpc-ceiling``: today's fixed rows (ceiling: one repeated request) with h2load, at 64
  streams (``--rounds``) and at 1 (``--ceiling-rounds``), and grpcload's ``Health/Check`` on
  the same server next to h2load's at 64 streams (the sanity check of grpcload).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from grpc_health.v1 import health_pb2
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from tests.bench import frames, procs
from tests.bench.loadgen import Result, grpc_frame, grpc_status_of_sample, grpcload, h2load
from tests.bench.rounds import rounds, with_server_cpu
from tests.bench.scale import populate_sqlite

SERVICE = "/tradetrust.chat.v1.ChatGateway"
HEALTH = "/grpc.health.v1.Health/Check"
KNOWN_ORDERS = 100_000
BENCH_ORDER = pb.EnsureOrderChannelRequest(
    order_id="ord-bench",
    buyer=pb.Participant(user_id="buyer-42", display_name="Ana"),
    seller=pb.Participant(user_id="seller-7", display_name="Sam"),
)
FIXED: dict[str, tuple[str, bytes, str | None]] = {
    "Health/Check": (HEALTH, grpc_frame(health_pb2.HealthCheckRequest()), None),
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
"""Today's fixed requests: (path, framed body, service key)."""


def _first_frame(path: Path) -> bytes:
    head = path.read_bytes()[:5]
    return path.read_bytes()[: 5 + int.from_bytes(head[1:5], "big")]


def _load(
    args: argparse.Namespace,
    gw: procs.Running,
    name: str,
    path: str,
    files: list[Path],
    key: str | None,
) -> Callable[[int], Result]:
    """grpcload of ``files[round]`` on ``gw``, after checking one sample answers OK."""
    status = grpc_status_of_sample(gw.grpc_port, path, _first_frame(files[0]), key)
    assert status == "0", f"{name}: sample grpc-status {status}"
    return with_server_cpu(
        gw,
        lambda r: grpcload(
            name,
            gw.grpc_port,
            path,
            files[r % len(files)],
            key,
            streams=64,
            duration_s=args.duration,
            warmup_s=args.warmup,
        ),
    )


def realistic(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    """The gRPC rows of the headline table."""
    db = work / "orders-1m.db"
    populate_sqlite(db, args.orders)
    per_run = int(args.max_grpc_rps * (args.duration + args.warmup))
    known = min(KNOWN_ORDERS, args.orders)
    health = frames.health_check(work / "health.bin")
    tokens, authorize, ensure = [], [], []
    for r in range(args.rounds + args.retries):  # fresh bodies for every attempt
        tokens.append(frames.issue_token_distinct(work / f"it-{r}.bin", f"itd{r}-", per_run))
        authorize.append(frames.authorize_random(work / f"ap-{r}.bin", args.orders, per_run, r))
        ensure.append(frames.ensure_repeat(work / f"eo-{r}.bin", known, per_run, 100 + r))
    log = work / "grpc-json.log"
    with (
        procs.gateway(work, database=db) as gw,
        procs.gateway(work, extra_env=procs.ACCESS_LINES_ENV, log=log) as gwj,
        procs.PeakRss(gw).sampling() as rss,
    ):
        runs = {
            "Health/Check": _load(args, gw, "Health/Check", HEALTH, [health], None),
            "IssueToken, distinct users": _load(
                args, gw, "IssueToken", f"{SERVICE}/IssueToken", tokens, procs.WEB_KEY
            ),
            "AuthorizeParticipant, 1 M orders": _load(
                args,
                gw,
                "AuthorizeParticipant",
                f"{SERVICE}/AuthorizeParticipant",
                authorize,
                procs.ORDER_KEY,
            ),
            "EnsureOrderChannel repeat, 100 k orders": _load(
                args,
                gw,
                "EnsureOrderChannel",
                f"{SERVICE}/EnsureOrderChannel",
                ensure,
                procs.ORDER_KEY,
            ),
            "IssueToken, distinct users, JSON access lines": _load(
                args,
                gwj,
                "IssueToken (JSON lines)",
                f"{SERVICE}/IssueToken",
                tokens,
                procs.WEB_KEY,
            ),
        }
        lines_before = procs.access_lines(log)
        measured = rounds(args.rounds, runs, retries=args.retries)
        table = {name: asdict(r) for name, r in measured.items()}
        lines = procs.access_lines(log) - lines_before
    sent = table["IssueToken, distinct users, JSON access lines"]["extra"]["sent_total"]
    out["grpc"] = {
        "rows": table,
        "orders": args.orders,
        "known_orders": known,
        "bodies_per_run": per_run,
        "rss_kb": rss.peak_kb,
        # grpcload's "sent" (warm-up included), every round: lines per sent call ≈ 1.
        "access_lines_per_request": round(lines / max(1, sent), 3),
    }


def ceiling(args: argparse.Namespace, work: Path, out: dict[str, object]) -> None:
    """Today's fixed rows with h2load, and the grpcload-vs-h2load sanity check."""
    health = frames.health_check(work / "health.bin")
    with procs.gateway(work) as gw:
        seed = grpc_status_of_sample(
            gw.grpc_port, f"{SERVICE}/EnsureOrderChannel", grpc_frame(BENCH_ORDER), procs.ORDER_KEY
        )
        assert seed == "0", f"seeding the bench order failed: grpc-status {seed}"
        for name, (path, frame, key) in FIXED.items():
            status = grpc_status_of_sample(gw.grpc_port, path, frame, key)
            assert status == "0", f"{name}: sample grpc-status {status}"
        for streams in (64, 1):

            def fixed(name: str, streams: int = streams) -> Callable[[int], Result]:
                path, frame, key = FIXED[name]
                return lambda r: h2load(
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

            runs = {name: with_server_cpu(gw, fixed(name)) for name in FIXED}
            if streams == 64:
                runs["Health/Check, grpcload"] = _load(
                    args, gw, "Health/Check, grpcload", HEALTH, [health], None
                )
            # 64 streams: as many rounds as the headline (it holds the grpcload sanity pair).
            table = rounds(args.rounds if streams == 64 else args.ceiling_rounds, runs)
            out[f"grpc_ceiling_{streams}"] = {name: asdict(r) for name, r in table.items()}
