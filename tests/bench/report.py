"""latest.md (headline table of production-shaped workloads, targets, measurement checks,
then the ceilings) and bench.png from a run's figures. ``python -m tests.bench.report``
rewrites both from latest.json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tests.bench.targets import paired, soundness, targets

MB = 1024


def _num(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def _ms(r: dict[str, Any]) -> str:
    return f"{_num(r['p50_ms'], 2)} / {_num(r['p99_ms'], 2)}"


def _ok(flag: bool | None) -> str:
    return {True: "✅ met", False: "❌ not met", None: "– not measured"}[flag]


def _cores(r: dict[str, Any]) -> str:
    return f"{_num(r.get('loadgen_cores'), 2)} ({r.get('loadgen', '')})"


ROW_HEAD = (
    "| workload | server | req/s | × baseline | p50 / p99 ms | load generator: cores "
    "| server cores | errors |\n|---|---|---:|---:|---:|---:|---:|---:|"
)


def _row(workload: str, server: str, r: dict[str, Any], ratio: str) -> str:
    return (
        f"| {workload} | {server} | {_num(r['rps'])} | {ratio} | {_ms(r)} | {_cores(r)} | "
        f"{_num(r['extra'].get('server_cores'), 2)} | {r['errors']} |"
    )


def _http_rows(title: str, section: dict[str, Any] | None) -> list[str]:
    if not section:
        return []
    rows = section["rows"]
    gw = rows["gateway"]
    out = []
    for name, r in rows.items():
        if name == "gateway":
            ratio = "1.00 (baseline)"
        elif name.startswith("gateway"):
            ratio = f"{paired(r, gw):.2f}× lines off"
        else:
            ratio = f"gateway is {paired(gw, r):.2f}×"
        out.append(_row(title, name, r, ratio))
    return out


def _headline(out: dict[str, Any]) -> list[str]:
    lines = [
        "## Headline: production-shaped workloads",
        "",
        "Rows marked *JSON access lines* are production's logging defaults; every other row has "
        "access lines off. Errors on Node peer rows are wrk socket errors (its 2 s timeouts of an "
        "overloaded peer), not rejected sessions: see the measurement checks.",
        "",
        ROW_HEAD,
    ]
    lines += _http_rows("HTTP token, distinct users", out.get("http_distinct"))
    lines += _http_rows("HTTP token, returning users (Zipf 1.1, 100 k)", out.get("http_returning"))
    grpc = out.get("grpc")
    if grpc:
        base = grpc["rows"]["Health/Check"]
        for name, r in grpc["rows"].items():
            ratio = "1.00 (baseline)" if name == "Health/Check" else f"{paired(r, base):.2f}×"
            lines.append(_row(f"gRPC {name}", "gateway", r, ratio))
    lines.append("")
    orders = out.get("new_orders")
    if orders:
        lines += [
            f"**New orders**: `EnsureOrderChannel` for orders never seen before, "
            f"{orders['concurrency']} concurrent calls, Stream double answering after "
            f"{orders['stream_delay_s'] * 1000:.0f} ms; returning = buyer and seller drawn from "
            f"{orders['pools']['buyers']:,} buyers and {orders['pools']['sellers']:,} sellers "
            "who each had an order before (warm-up)."
            + (
                f" Each phase ran in {orders['rounds']} rounds, each right before its floor "
                "(below): orders/s, latencies, cores and the time split are the median "
                "round's (by orders/s; every round's orders/s in brackets, with the CPU the "
                "hypervisor stole in it), × floor the median "
                "of the per-round ratios; errors, Stream calls per order and channels count "
                "every round."
                if orders.get("rounds")
                else ""
            ),
            "",
            "| registry | buyers and sellers | orders/s | p50 / p99 ms | Stream calls per order "
            "| channels | pending / errors | gateway cores | driver cores | double cores "
            "| double loop lag p50 / p99 ms |",
            "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        any_floors = False
        for kind in ("sqlite", "postgresql"):
            phases = orders.get(kind) or {}
            floors = phases.get("floors") or {}
            any_floors = any_floors or bool(floors)
            for name, p in phases.items():
                if not isinstance(p, dict) or "stream_calls" not in p:
                    continue
                ch = p["channels"]
                floor = floors.get(name)
                of_floor = ""
                if "of_floor" in p:
                    of_floor = f" ({p['of_floor']:.2f}× floor)"
                elif floor:  # runs before the floors ran in rounds
                    of_floor = f" ({p['orders_per_s'] / floor['orders_per_s']:.2f}× floor)"
                lines.append(
                    f"| {kind} | {name} | {_num(p['orders_per_s'])}{of_floor}{_rounds(p)} | "
                    f"{_ms(p)} | "
                    f"{p['stream_calls_per_order']:.2f} ({_paths(p['stream_calls_by_path'])}) | "
                    f"{ch['count']:,} for {p['orders'] + p['errors']:,} orders, "
                    f"{ch['created_once']:,} created once | {p['pending']} / {p['errors']} | "
                    f"{p['gateway_cores']:.2f} | {p['driver_cores']:.2f} | "
                    f"{p['double_cores']:.2f} | {p['double_loop_lag']['p50_ms']:.1f} / "
                    f"{p['double_loop_lag']['p99_ms']:.1f} |"
                )
            for name, floor in floors.items():
                lines.append(
                    f"| {kind} | *floor for {name}: bare grpc.aio waiting "
                    f"{floor['wait_ms']} ms* | {_num(floor['orders_per_s'])}{_rounds(floor)} | "
                    f"{_ms(floor)} | "
                    f"– | – | {floor['pending']} / {floor['errors']} | "
                    f"{floor['server_cores']:.2f} | {floor['driver_cores']:.2f} | – | – |"
                )
        lines.append("")
        if any_floors:
            lines += [
                "The *floor* rows: the same driver, right after each of that registry's "
                "phases, against a grpc.aio server that waits an order's Stream calls' time "
                "(50 ms for one call, as for returning users; 100 ms for two, as for new users) "
                "and does nothing else (`tests/bench/floor.py`): what this machine and the "
                "framework allow at 64 calls in flight in that run.",
                "",
            ]
        timed = [
            (kind, name, p["time_ms"])
            for kind in ("sqlite", "postgresql")
            for name, p in (orders.get(kind) or {}).items()
            if isinstance(p, dict) and "time_ms" in p
        ]
        if timed:
            lines += [
                "Where a new order's time goes (means over each phase, ms): the RPC in the "
                "server and each Stream call as the gateway sees them (its `/metrics`), the "
                "same calls' time in the double (reading the request to the answer made), and "
                "the gateway's CPU per order. Beyond its Stream calls an RPC spends its time in "
                "the registry's writes, waiting for a users batch to go, and waiting for the event "
                "loop.",
                "",
                "| registry | buyers and sellers | RPC in the server | channel query: gateway / "
                "double | users upsert: gateway / double | gateway CPU per order |",
                "|---|---|---:|---:|---:|---:|",
            ]
            for kind, name, t in timed:
                server, double = t["server"], t["in_double"]
                lines.append(
                    f"| {kind} | {name} | {_opt(server['rpc'])} | {_opt(server['query'])} / "
                    f"{_opt(double['query'])} | {_opt(server['users'])} / "
                    f"{_opt(double['users'])} | {t['gateway_cpu_per_order']:.2f} |"
                )
            lines.append("")
    memory = []
    if grpc:
        memory.append(
            f"{grpc['rss_kb'] / MB:.0f} MB peak with {grpc['orders']:,} recorded orders "
            "(the gRPC gateway above, through all its runs)"
        )
    users = out.get("rss_users")
    if users:
        memory.append(
            f"{users['peak_rss_kb'] / MB:.0f} MB peak ({users['rss_start_kb'] / MB:.0f} MB at "
            f"start, {users['rss_end_kb'] / MB:.0f} MB at the end) after {users['users']:,} "
            f"distinct users' tokens over HTTP ({users['elapsed_s']:.0f} s)"
        )
    if memory:
        lines += ["**Gateway RSS** (one worker): " + "; ".join(memory) + ".", ""]
    return lines


def _rounds(phase: dict[str, Any]) -> str:
    each = phase.get("rounds")
    if not each or len(each) < 2:
        return ""
    stolen = phase.get("steal_rounds") or []
    steal = f"; steal {' / '.join(f'{s:.0f}' for s in stolen)} %" if stolen else ""
    rerun = phase.get("discarded_steal") or []
    if rerun:
        steal += f"; {len(rerun)} run again (steal {' / '.join(f'{s:.0f}' for s in rerun)} %)"
    return f" [{' / '.join(_num(r) for r in each)}{steal}]"


def _opt(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:.1f}"


def _paths(by_path: dict[str, int]) -> str:
    short = {"POST /users": "users", "POST /channels/{type}/{id}/query": "query"}
    return ", ".join(f"{short.get(k, k)} {v:,}" for k, v in sorted(by_path.items())) or "none"


def _checks(title: str, checks: list[dict[str, Any]]) -> list[str]:
    lines = [f"## {title}", "", "| | measured | |", "|---|---:|---|"]
    lines += [f"| {c['target']} | {c['measured']} | {_ok(c['met'])} |" for c in checks]
    return [*lines, ""]


def _ceilings(out: dict[str, Any]) -> list[str]:
    lines = ["## Ceilings (one repeated request)", ""]
    for streams in (64, 1):
        table = out.get(f"grpc_ceiling_{streams}")
        if not table:
            continue
        base = table["Health/Check"]["rps"]
        lines += [
            f"gRPC, h2load, 1 connection × {streams} stream(s), ceiling (one repeated request):",
            "",
            ROW_HEAD,
        ]
        for name, r in table.items():
            lines.append(_row(f"gRPC {name}", "gateway", r, f"{r['rps'] / base:.2f}×"))
        lines.append("")
    http = out.get("http_ceiling")
    if http:
        rows = http["rows"]
        gw = rows["gateway"]["rps"]
        lines += [
            "HTTP token over 1,000 users' sessions, ceiling (one repeated request):",
            "",
            ROW_HEAD,
        ]
        for name, r in rows.items():
            ratio = "1.00" if name == "gateway" else f"gateway is {gw / r['rps']:.2f}×"
            lines.append(_row("HTTP, 1,000 users", name, r, ratio))
        lines.append("")
    workers = out.get("workers")
    if workers:
        lines += [
            "`serve --workers N`, ceiling (one repeated request; gRPC h2load 8 connections "
            "× 16 streams, HTTP wrk over 1,000 users):",
            "",
            "| workers | gRPC IssueToken req/s | HTTP token req/s | peak RSS MB (all) "
            "| gateway cores (gRPC) | errors |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for n, w in workers.items():
            lines.append(
                f"| {n} | {_num(w['grpc']['rps'])} | {_num(w['http']['rps'])} | "
                f"{w['rss_kb'] / MB:.0f} | {w['grpc_gateway_cores']:.2f} | "
                f"{w['grpc']['errors'] + w['http']['errors']} |"
            )
        one, two = workers["1"], workers["2"]
        lines += [
            "",
            f"Two workers: gRPC {two['grpc']['rps'] / one['grpc']['rps']:.2f}×, HTTP "
            f"{two['http']['rps'] / one['http']['rps']:.2f}× one worker.",
            "",
        ]
    scale = out.get("scale_sqlite")
    if scale:
        lines += [
            "Registry scale (SQLite): sequential AuthorizeParticipant, random orders:",
            "",
            "| orders | p50 ms | p99 ms | peak RSS MB |",
            "|---:|---:|---:|---:|",
        ]
        for n, r in scale.items():
            lines.append(
                f"| {int(n):,} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['rss_kb'] / MB:.0f} |"
            )
        lines.append("")
    return lines


METHOD = """## Method

Run everything: `make bench` (writes this file, `latest.json` and `bench.png`). A subset:
`make bench BENCH_ARGS="--only http-distinct grpc"` (suites: http-distinct, http-returning,
grpc, orders, rss, grpc-ceiling, http-ceiling, workers, scale; results then go to
`results/tmp/`, ignored by git). The rss suite lasts 1,000,000 / the gateway's distinct-user
rate.

- **Gateway**: `python -m gateway serve` as production runs it (no dev profile, local chat
  backend unless stated, SQLite, one worker), per-user token rate limit lifted, access lines off
  (`CHAT_GATEWAY_LOG_LEVEL=WARNING`) except in the rows saying "JSON access lines": production's
  logging (`CHAT_GATEWAY_LOG_FORMAT=json`, level INFO, `CHAT_GATEWAY_ACCESS_LOG=true`) with
  stdout/stderr to a file in the run's temporary directory, as a container runtime writes
  them to its log file (the bench counts the lines: one per request). Every ratio compares
  figures of the same run, interleaved round by round.
- **HTTP** (`tests/bench/wrk.py`): wrk, 1 thread, 64 keep-alive connections; each request
  carries the next session JWT of a pre-generated file (HS256 with the bench session secret,
  `sub`/`iat`/`exp`; the Node peers verify the same sessions with the same secret and sign the
  same claims). *Distinct users*: a new user on every request, never repeated in the gateway
  process (each round and the warm-up have their own users). *Returning users*: Zipf(1.1)
  draws over 100,000 users, each user's session the same bytes every time. Load-generator CPU:
  wrk's own process CPU (`os.clock`) from after loading its file to the end.
- **gRPC** (`tests/bench/grpcload.c`): one h2c connection × 64 streams, libnghttp2, bodies
  from a file of pre-framed requests sent in order; `grpc-status` of every response checked;
  CPU from its own `getrusage` over the measured window. Ceiling rows: h2load with one fixed
  body (its CPU from `wait4`, warm-up included). *IssueToken*: a different user on every
  call. *AuthorizeParticipant*: uniformly random orders among 1 M recorded orders (SQLite;
  the gateway keeps no orders in memory), as buyer or seller. *EnsureOrderChannel repeat*:
  uniformly random orders among 100,000 known (synced) orders.
- **New orders** (`tests/bench/orders.py`, `tests/bench/double.py`): a Python grpc.aio
  driver (its CPU reported) against the gateway in stream mode on the Stream double in a
  process of its own; Stream calls counted from the double's records between quiet points.
- **Server cores**: CPU seconds of the server (every thread) over the run's wall time,
  warm-up included.
"""


def write_report(out: dict[str, Any], results: Path) -> None:
    """Write latest.md and bench.png into ``results``."""
    goals, sound = targets(out), soundness(out)
    out["targets"], out["checks"] = goals, sound
    head = [
        f"# Benchmark — {out['when']}",
        "",
        *([f"**{out['note']}**", ""] if out.get("note") else []),
        f"Commit `{out['commit']}`. Machine: {out['machine']}; load average "
        f"{out['loadavg_start']} at the start, {out['loadavg_end']} at the end (the machine is "
        f"shared: absolute figures are noisy, same-run ratios less so). Each figure: median of "
        f"{out['settings']['rounds']} interleaved rounds of {out['settings']['duration_s']} s "
        f"after a {out['settings']['warmup_s']} s warm-up (ceilings: "
        f"{out['settings']['ceiling_rounds']} round(s), gRPC at 64 streams "
        f"{out['settings']['rounds']}); a ratio of two rows is the median of their per-round "
        "ratios. Suites (seconds): "
        + ", ".join(f"{s} {out.get(f'elapsed_s_{s}', '–')}" for s in out["suites"])
        + f"; {out.get('elapsed_s', '–')} s in all.",
        "",
    ]
    lines = [
        *head,
        *_headline(out),
        *_checks("Targets", goals),
        *_checks("Measurement checks", sound),
        *_ceilings(out),
        METHOD,
    ]
    (results / "latest.md").write_text("\n".join(lines).rstrip() + "\n")
    (results / "latest.json").write_text(json.dumps(out, indent=2) + "\n")
    _chart(out, results / "bench.png")


def _chart(out: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the bench extra is not installed
        return
    panels = []
    for key, title in (
        ("http_distinct", "HTTP token, distinct users"),
        ("http_returning", "HTTP token, returning users"),
        ("grpc", "gRPC, grpcload 64 streams"),
    ):
        if out.get(key):
            rows = out[key]["rows"]
            panels.append((title, {n: r["rps"] for n, r in rows.items()}, "req/s"))
    orders = out.get("new_orders") or {}
    new = {
        f"{kind}, {name.split()[0]}": p["orders_per_s"]
        for kind in ("sqlite", "postgresql")
        for name, p in (orders.get(kind) or {}).items()
        if isinstance(p, dict) and "stream_calls" in p
    }
    if new:
        panels.append(("New orders (Stream at 50 ms)", new, "orders/s"))
    if not panels:
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), squeeze=False)
    for ax, (title, values, unit) in zip(axes[:, 0], panels, strict=True):
        names = list(values)
        ax.barh(names, [values[n] for n in names], color="#4a7bd0")
        ax.set_title(f"{title} ({unit})", fontsize=10)
        ax.invert_yaxis()
        ax.tick_params(labelsize=8)
        for i, n in enumerate(names):
            ax.text(values[n], i, f" {values[n]:,.0f}", va="center", fontsize=8)
    fig.suptitle(f"chat gateway — {out['when']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    latest = Path(__file__).resolve().parent / "results"
    write_report(json.loads((latest / "latest.json").read_text()), latest)
