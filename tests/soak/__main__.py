"""``make soak``: minutes of mixed gRPC + HTTP load at ~80 % of the measured maximum.

1. Start the gateway as production runs it (``tests.bench.procs.gateway``: no dev profile,
   local backend, SQLite, WARNING logs).
2. Measure the maximum: closed-loop h2load on IssueToken, EnsureOrderChannel (an existing
   order: idempotent) and AuthorizeParticipant over h2c, plus h2load ``--h1`` on the HTTP
   token route with a session JWT, all at once for ``--measure`` seconds.
3. Soak: the same four streams, each rate-limited (``--rps``) to ``--load`` of its own
   maximum, for ``--duration`` seconds, sampling the gateway's RSS every 5 s.
4. Verdict from the gateway's own ``/metrics`` (gRPC errors hide in trailers, where h2load
   does not look): zero non-OK RPCs and non-2xx requests during the soak, RSS after warm-up
   within 10 %, sync backlog zero at the end. Exit 1 if any check fails.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
from prometheus_client.parser import text_string_to_metric_families
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from tests.bench import procs
from tests.bench.loadgen import grpc_frame

SERVICE = "/tradetrust.chat.v1.ChatGateway/"
ORDER = "ord-soak-1"
BUYER = "buyer-soak"
SELLER = "seller-soak"


@dataclass(frozen=True)
class Stream:
    """One h2load load stream."""

    name: str
    path: str
    frame: bytes | None  # gRPC body; None: HTTP/1.1 GET
    key: str | None
    connections: int
    streams: int


@dataclass(frozen=True)
class Run:
    """What h2load said about one stream."""

    name: str
    rps: float
    done: int
    failed: int


def _streams() -> list[Stream]:
    participant = pb.Participant
    return [
        Stream(
            "grpc IssueToken",
            SERVICE + "IssueToken",
            grpc_frame(pb.IssueTokenRequest(user_id=BUYER)),
            procs.WEB_KEY,
            1,
            8,
        ),
        Stream(
            "grpc EnsureOrderChannel",
            SERVICE + "EnsureOrderChannel",
            grpc_frame(
                pb.EnsureOrderChannelRequest(
                    order_id=ORDER,
                    buyer=participant(user_id=BUYER),
                    seller=participant(user_id=SELLER),
                )
            ),
            procs.ORDER_KEY,
            1,
            8,
        ),
        Stream(
            "grpc AuthorizeParticipant",
            SERVICE + "AuthorizeParticipant",
            grpc_frame(pb.AuthorizeParticipantRequest(order_id=ORDER, user_id=BUYER)),
            procs.ORDER_KEY,
            1,
            8,
        ),
        Stream("http token", "/api/chat/stream/token", None, None, 8, 1),
    ]


def _h2load(
    stream: Stream, port: int, session: str, duration_s: int, rps: float | None, work: Path
) -> subprocess.Popen[str]:
    args = ["h2load", "-c", str(stream.connections), "-m", str(stream.streams)]
    args += ["-D", str(duration_s), "--warm-up-time=1"]
    if rps is not None:
        args.append(f"--rps={max(rps / stream.connections, 1.0):.1f}")
    if stream.frame is not None:
        data = work / f"{stream.name.replace(' ', '-')}.bin"
        data.write_bytes(stream.frame)
        args += ["-d", str(data), "-H", "content-type: application/grpc", "-H", "te: trailers"]
        args += ["-H", f"authorization: Bearer {stream.key}"]
    else:
        args += ["--h1", "-H", f"authorization: Bearer {session}"]
    args.append(f"http://127.0.0.1:{port}{stream.path}")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _parse(name: str, out: str) -> Run:
    rps = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
    counts = re.search(
        r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed, "
        r"(\d+) errored",
        out,
    )
    if rps is None or counts is None:
        raise RuntimeError(f"h2load output not understood for {name}:\n{out}")
    return Run(
        name, float(rps.group(1)), int(counts.group(1)), int(counts.group(2)) + int(counts.group(3))
    )


def run_mix(
    gw: procs.Running, session: str, duration_s: int, rates: dict[str, float] | None, work: Path
) -> dict[str, Run]:
    """All streams at once; closed loop without ``rates``."""
    started = []
    for stream in _streams():
        port = gw.http_port if stream.frame is None else gw.grpc_port
        rate = rates[stream.name] if rates is not None else None
        started.append((stream, _h2load(stream, port, session, duration_s, rate, work)))
    runs = {}
    for stream, proc in started:
        out, _ = proc.communicate(timeout=duration_s + 120)
        runs[stream.name] = _parse(stream.name, out)
    return runs


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The gateway's metrics as ``{(name, sorted labels): value}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _errors(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> dict[str, float]:
    out: dict[str, float] = {}
    for (name, labels), value in after.items():
        labels_d = dict(labels)
        bad = (name == "chat_gateway_rpcs_total" and labels_d.get("code") != "OK") or (
            name == "chat_gateway_http_requests_total"
            and not labels_d.get("status", "").startswith("2")
        )
        delta = value - before.get((name, labels), 0.0)
        if bad and delta:
            out[f"{name}{labels_d}"] = delta
    return out


def _seed(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        pb_grpc.ChatGatewayStub(channel).EnsureOrderChannel(
            pb.EnsureOrderChannelRequest(
                order_id=ORDER,
                buyer=pb.Participant(user_id=BUYER),
                seller=pb.Participant(user_id=SELLER),
            ),
            metadata=(("authorization", f"Bearer {procs.ORDER_KEY}"),),
            timeout=10,
        )


class RssSampler(threading.Thread):
    """Samples the gateway's RSS (KiB) every ``every_s`` seconds."""

    def __init__(self, gw: procs.Running, every_s: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.gw = gw
        self.every_s = every_s
        self.samples: list[tuple[float, int]] = []
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.samples.append((time.monotonic() - self.t0, self.gw.rss_kb()))
            self.stop_event.wait(self.every_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--duration", type=int, default=300, help="soak seconds (default 300)")
    parser.add_argument("--measure", type=int, default=10, help="max-measurement seconds")
    parser.add_argument("--load", type=float, default=0.8, help="fraction of the maximum")
    parser.add_argument("--warmup", type=int, default=60, help="seconds before RSS counts")
    args = parser.parse_args(argv)
    warmup = min(args.warmup, args.duration // 3)
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = Path(tmp)
        with procs.gateway(work, extra_env={"CHAT_GATEWAY_METRICS_REFRESH": "1"}) as gw:
            _seed(gw.grpc_port)
            session = procs.session_jwt(BUYER, lifetime_s=args.duration + 3600)
            out.write(f"measuring the maximum for {args.measure}s (all streams at once)...\n")
            maximum = run_mix(gw, session, args.measure, None, work)
            for run in maximum.values():
                out.write(f"  max {run.name:28s} {run.rps:9.1f} req/s\n")
            rates = {name: run.rps * args.load for name, run in maximum.items()}
            out.write(
                f"soaking {args.duration}s at {args.load:.0%}: {sum(rates.values()):.0f} req/s "
                "in total...\n"
            )
            out.flush()
            before = scrape(gw.http_port)
            sampler = RssSampler(gw)
            sampler.start()
            soak = run_mix(gw, session, args.duration, rates, work)
            sampler.stop_event.set()
            sampler.join()
            after = scrape(gw.http_port)
            backlog = after.get(("chat_gateway_sync_backlog_orders", ()), -1.0)
            for _ in range(30):  # the gauge refreshes every second
                if backlog == 0:
                    break
                time.sleep(1)
                backlog = scrape(gw.http_port).get(("chat_gateway_sync_backlog_orders", ()), -1)
    errors = _errors(before, after)
    load_errors = sum(r.failed for r in soak.values())
    settled = [kb for t, kb in sampler.samples if t >= warmup]
    rss_start, rss_end = settled[0], settled[-1]
    rss_max, rss_min = max(settled), min(settled)
    growth = (rss_max - rss_start) / rss_start
    total_rps = sum(r.rps for r in soak.values())
    total_done = sum(r.done for r in soak.values())
    out.write("soak results:\n")
    for run in soak.values():
        out.write(
            f"  {run.name:28s} {run.rps:9.1f} req/s  {run.done:9d} done  {run.failed} failed\n"
        )
    out.write(f"  total                        {total_rps:9.1f} req/s  {total_done:9d} done\n")
    out.write(f"  errors (server metrics): {int(sum(errors.values()))} {errors or ''}\n")
    out.write(f"  errors (h2load failed/errored): {load_errors}\n")
    out.write(
        f"  RSS after {warmup}s warm-up: start {rss_start / 1024:.1f} MiB, end "
        f"{rss_end / 1024:.1f} MiB, min {rss_min / 1024:.1f}, max {rss_max / 1024:.1f} MiB "
        f"(max growth {growth:+.1%}; first sample {sampler.samples[0][1] / 1024:.1f} MiB)\n"
    )
    out.write(f"  sync backlog at the end: {backlog:g}\n")
    ok = not errors and load_errors == 0 and growth <= 0.10 and backlog == 0
    ok = ok and all(r.rps >= 0.9 * rates[name] for name, r in soak.items())
    out.write("SOAK PASSED\n" if ok else "SOAK FAILED\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
