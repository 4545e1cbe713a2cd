"""Markdown table and PNG chart of a bench run, with the targets checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "n/a"


def _ok(flag: bool) -> str:
    return "✅" if flag else "❌"


def write_report(out: dict[str, Any], results: Path) -> None:
    """Write latest.md (tables + target checks) and bench.png."""
    lines = [
        f"# Benchmark — {out['when']}",
        "",
        f"Machine: {out['machine']}. "
        f"Each figure: median of {out['settings']['rounds']} interleaved rounds of "
        f"{out['settings']['duration_s']} s.",
        "",
    ]
    checks: list[tuple[str, bool]] = []
    for streams in (64, 1):
        table = out.get(f"grpc_{streams}")
        if not table:
            continue
        base = table["Health/Check"]
        lines += [
            f"## gRPC, h2load, 1 connection × {streams} stream(s)",
            "",
            "| RPC | req/s | p50 ms | p99 ms | × Health/Check req/s | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, r in table.items():
            lines.append(
                f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                f"{_ratio(r['rps'], base['rps'])} | {r['errors']} |"
            )
        lines.append("")
        if streams == 64:
            for name, target in (
                ("IssueToken", 0.9),
                ("AuthorizeParticipant", 0.85),
                ("EnsureOrderChannel (repeat)", 0.8),
            ):
                checks.append(
                    (
                        f"{name} ≥ {target}× Health/Check req/s (64 streams)",
                        table[name]["rps"] >= target * base["rps"],
                    )
                )
            for name in table:
                checks.append(
                    (
                        f"{name} p99 ≤ 2× p50 (64 streams)",
                        table[name]["p99_ms"] <= 2 * table[name]["p50_ms"],
                    )
                )
        else:
            for name in table:
                if name != "Health/Check":
                    checks.append(
                        (
                            f"{name} p99 ≤ 1.3× Health/Check p99 (1 stream)",
                            table[name]["p99_ms"] <= 1.3 * base["p99_ms"],
                        )
                    )
    http = out.get("http")
    if http:
        gw, health = http["gateway token"], http["gateway /healthz"]
        fast, seed = http["node fast token"], http["node seed token"]
        lines += [
            "## HTTP, wrk, 64 connections (token: 1,000 users' session JWTs)",
            "",
            "| endpoint | req/s | p50 ms | p99 ms | gateway token × this | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, r in http.items():
            lines.append(
                f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                f"{_ratio(gw['rps'], r['rps'])} | {r['errors']} |"
            )
        lines.append("")
        checks += [
            ("token ≥ 0.7× /healthz", gw["rps"] >= 0.7 * health["rps"]),
            ("token ≥ 1.0× fast Node peer", gw["rps"] >= fast["rps"]),
            ("token ≥ 10× seed-style Node peer", gw["rps"] >= 10 * seed["rps"]),
        ]
    workers = out.get("workers")
    if workers:
        one, two = workers["1"], workers["2"]
        lines += [
            "## Workers (`serve --workers N`, SO_REUSEPORT)",
            "",
            "IssueToken over gRPC (h2load, 8 connections × 16 streams) and the HTTP token "
            "route (wrk, 64 connections).",
            "",
            "| workers | gRPC IssueToken req/s | HTTP token req/s | peak RSS MB (all) | errors "
            "| gateway cores busy (gRPC) | h2load cores |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n, r in workers.items():
            lines.append(
                f"| {n} | {r['rps']:.0f} | {r.get('http_rps', 0):.0f} | "
                f"{r['rss_kb'] / 1024:.0f} | {r['errors'] + r.get('http_errors', 0)} "
                f"| {r.get('grpc_gateway_cores', float('nan')):.2f} "
                f"| {r.get('grpc_h2load_cores', float('nan')):.2f} |"
            )
        lines.append("")
        if one.get("grpc_gateway_cores") and out.get("cpus"):
            cpus = out["cpus"]
            ceiling = (cpus - two["grpc_h2load_cores"]) / one["grpc_gateway_cores"]
            lines += [
                f"CPU ceiling for gRPC here: {cpus} cores, less what h2load uses, over what one "
                f"worker uses at full load = {ceiling:.2f}× one worker.",
                "",
            ]
        checks.append(
            ("--workers 2 ≥ 1.5× one worker (gRPC IssueToken)", two["rps"] >= 1.5 * one["rps"])
        )
        if "http_rps" in one:
            checks.append(
                (
                    "--workers 2 ≥ 1.5× one worker (HTTP token)",
                    two["http_rps"] >= 1.5 * one["http_rps"],
                )
            )
    scale = out.get("scale_sqlite")
    if scale:
        lines += [
            "## Registry scale (SQLite): AuthorizeParticipant, sequential, random orders",
            "",
            "| orders | p50 ms | p99 ms | peak RSS MB | populate s |",
            "|---:|---:|---:|---:|---:|",
        ]
        for n, r in scale.items():
            lines.append(
                f"| {int(n):,} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
                f"{r['rss_kb'] / 1024:.0f} | {r['populate_s']} |"
            )
        lines.append("")
        small, big = scale.get("10000"), scale.get("1000000")
        if small and big:
            checks += [
                ("1 M orders p50 within 1.2× of 10 k", big["p50_ms"] <= 1.2 * small["p50_ms"]),
                ("1 M orders p99 within 1.2× of 10 k", big["p99_ms"] <= 1.2 * small["p99_ms"]),
            ]
    rss = [v for k, v in out.items() if k.startswith("rss_")]
    rss += [r["rss_kb"] for r in (scale or {}).values()]
    if rss:
        peak_mb = max(rss) / 1024
        lines += [f"Peak gateway RSS (one worker): {peak_mb:.0f} MB", ""]
        checks.append(("RSS ≤ 150 MB per worker", peak_mb <= 150))
    lines += ["## Targets", "", "| target | met |", "|---|:-:|"]
    lines += [f"| {name} | {_ok(flag)} |" for name, flag in checks]
    (results / "latest.md").write_text("\n".join(lines) + "\n")
    _chart(out, results / "bench.png")


def _chart(out: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the bench extra is not installed
        return
    panels = [
        (k, v)
        for k, v in (
            ("gRPC req/s (64 streams)", out.get("grpc_64")),
            ("HTTP req/s (64 connections)", out.get("http")),
        )
        if v
    ]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, table) in zip(axes[0], panels, strict=True):
        names = list(table)
        ax.barh(names, [table[n]["rps"] for n in names], color="#4a7bd0")
        ax.set_title(title)
        ax.invert_yaxis()
        for i, n in enumerate(names):
            ax.text(table[n]["rps"], i, f" {table[n]['rps']:.0f}", va="center", fontsize=8)
    fig.suptitle(f"chat gateway — {out['when']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    latest = Path(__file__).resolve().parent / "results"
    write_report(json.loads((latest / "latest.json").read_text()), latest)
