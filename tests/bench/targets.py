"""The targets of a bench run, each checked against figures measured in that run, and the
checks that the measurements themselves are sound (no errors, nothing repeated that should
not be, access lines really on, grpcload agreeing with h2load).

A target is a dict: ``target`` (what is asked), ``measured`` (the figure, as text), ``value``
and ``threshold`` (numbers), ``met`` (True, False, or None when its suite did not run).
"""

from __future__ import annotations

import statistics
from typing import Any

from tests.bench.rounds import MAX_STEAL_PCT, disturbed

MB = 1024


def _check(
    target: str, value: float | None, threshold: float, *, at_most: bool = False, unit: str = "×"
) -> dict[str, Any]:
    if value is None:
        return {
            "target": target,
            "measured": "not measured",
            "value": None,
            "threshold": threshold,
            "met": None,
        }
    met = value <= threshold if at_most else value >= threshold
    shown = f"{value:.2f}{unit}" if unit == "×" else f"{value:,.{0 if value >= 100 else 2}f} {unit}"
    return {
        "target": target,
        "measured": shown,
        "value": round(value, 4),
        "threshold": threshold,
        "met": met,
    }


def paired(row: dict[str, Any], base: dict[str, Any]) -> float:
    """``row``'s req/s as a multiple of ``base``'s, both of one table: the median of the
    per-round ratios when both ran the same rounds (a round runs them back to back, so a
    slow spell of the machine hits both), else the ratio of their medians."""
    mine, theirs = row["extra"].get("rounds"), base["extra"].get("rounds")
    if mine and theirs and len(mine) == len(theirs) and all(theirs):
        return float(statistics.median(a / b for a, b in zip(mine, theirs, strict=True)))
    return float(row["rps"] / base["rps"])


def _ratio(section: dict[str, Any] | None, row: str, base: str) -> float | None:
    """``paired`` of two rows of ``section``, or None when either was not measured."""
    if not section or row not in section["rows"] or base not in section["rows"]:
        return None
    return paired(section["rows"][row], section["rows"][base])


def targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue, met or not (or not measured)."""
    distinct, returning, grpc = out.get("http_distinct"), out.get("http_returning"), out.get("grpc")
    checks = [
        _check(
            "HTTP token, distinct users ≥ 0.7× fast Node peer",
            _ratio(distinct, "gateway", "node fast peer"),
            0.7,
        ),
        _check(
            "HTTP token, distinct users ≥ 15× seed-style Node peer",
            _ratio(distinct, "gateway", "node seed peer"),
            15,
        ),
        _check(
            "HTTP token, returning users ≥ 1.0× fast Node peer",
            _ratio(returning, "gateway", "node fast peer"),
            1.0,
        ),
        _check(
            "gRPC IssueToken, distinct users ≥ 0.85× Health/Check",
            _ratio(grpc, "IssueToken, distinct users", "Health/Check"),
            0.85,
        ),
        _check(
            "gRPC AuthorizeParticipant, 1 M orders ≥ 0.7× Health/Check",
            _ratio(grpc, "AuthorizeParticipant, 1 M orders", "Health/Check"),
            0.7,
        ),
    ]
    orders = out.get("new_orders") or {}
    for kind in ("sqlite", "postgresql"):
        phases = orders.get(kind) or {}
        ret, new = phases.get("returning buyers and sellers"), phases.get("new buyers and sellers")
        for label, phase in (("returning", ret), ("new users", new)):
            checks.append(
                _check(
                    f"New orders ({kind}, {label}) ≥ 500 orders/s, Stream at 50 ms",
                    phase["orders_per_s"] if phase else None,
                    500,
                    unit="orders/s",
                )
            )
        checks.append(
            _check(
                f"New orders ({kind}), returning buyers/sellers ≤ 1.1 Stream calls per order",
                ret["stream_calls_per_order"] if ret else None,
                1.1,
                at_most=True,
                unit="calls",
            )
        )
        checks.append(
            _check(
                f"New orders ({kind}), new users ≤ 2 Stream calls per order",
                new["stream_calls_per_order"] if new else None,
                2,
                at_most=True,
                unit="calls",
            )
        )
        both = [p for p in (ret, new) if p]
        checks.append(
            {
                "target": f"New orders ({kind}): exactly one channel per order",
                "measured": "; ".join(
                    f"{p['channels']['count']:,} channels "
                    f"({p['channels']['created_once']:,} created once) "
                    f"for {p['orders'] + p['errors']:,} orders"
                    for p in both
                )
                or "not measured",
                "value": None,
                "threshold": None,
                "met": all(p["one_channel_per_order"] for p in both) if both else None,
            }
        )
    checks += [
        _check(
            "JSON access lines cost ≤ 10%: HTTP token (distinct users) ≥ 0.9× lines off",
            _ratio(distinct, "gateway, JSON access lines", "gateway"),
            0.9,
        ),
        _check(
            "JSON access lines cost ≤ 10%: gRPC IssueToken (distinct users) ≥ 0.9× lines off",
            _ratio(
                grpc,
                "IssueToken, distinct users, JSON access lines",
                "IssueToken, distinct users",
            ),
            0.9,
        ),
        _check(
            "RSS ≤ 150 MB at 1 M orders (gRPC gateway, peak)",
            grpc["rss_kb"] / MB if grpc else None,
            150,
            at_most=True,
            unit="MB",
        ),
        _check(
            "RSS ≤ 150 MB after 1,000,000 distinct users' tokens (HTTP, peak)",
            out["rss_users"]["peak_rss_kb"] / MB if out.get("rss_users") else None,
            150,
            at_most=True,
            unit="MB",
        ),
    ]
    return checks


def soundness(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Checks that the measurements mean what they say."""
    return [
        *_http_answers(out),
        *_grpc_answers(out),
        *_no_repeats(out),
        *_light_load_generators(out),
        *_access_lines_on(out),
        *_grpcload_vs_h2load(out),
        *_new_orders_sound(out),
        *_rss_users_sound(out),
        *undisturbed(out),
    ]


def undisturbed(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Per suite, the worst CPU steal over every measured run of every round: time the
    machine had work for but the hypervisor gave to other tenants. Above a few percent a
    run's figures (and the ratios pairing it) say more about the neighbours than the code."""
    stolen: dict[str, list[tuple[float, str]]] = {}
    rerun: dict[str, list[float]] = {}
    for key in ("http_distinct", "http_returning", "grpc"):
        for name, row in ((out.get(key) or {}).get("rows") or {}).items():
            for pct in row["extra"].get("steal_rounds") or []:
                stolen.setdefault(key, []).append((pct, name))
            # Every row of a table shares its rounds, so the discarded ones are the same.
            rerun[key] = list(row["extra"].get("discarded_steal") or [])
    orders = out.get("new_orders") or {}
    for kind in ("sqlite", "postgresql"):
        phases = orders.get(kind) or {}
        measured = {
            **{n: p for n, p in phases.items() if isinstance(p, dict) and "stream_calls" in p},
            **{f"floor for {n}": f for n, f in (phases.get("floors") or {}).items()},
        }
        for name, phase in measured.items():
            for pct in phase.get("steal_rounds") or []:
                stolen.setdefault(f"new orders ({kind})", []).append((pct, name))
            rerun.setdefault(f"new orders ({kind})", []).extend(phase.get("discarded_steal") or [])
    checks = []
    for key, runs in stolen.items():
        worst, where = max(runs)
        above = sum(1 for pct, _ in runs if disturbed(pct))
        again = rerun.get(key) or []
        retried = (
            f"; {len(again)} round(s) run again (steal {', '.join(f'{p:.0f}' for p in again)}%)"
            if again
            else ""
        )
        checks.append(
            _flag(
                f"{key}: CPU stolen by the hypervisor ≤ {MAX_STEAL_PCT:.0f}% in every measured "
                "run (`/proc/stat` steal)",
                f"worst {worst:.1f}% ({where}); {above} of {len(runs)} runs above{retried}",
                above == 0,
            )
        )
    return checks


def _http_answers(out: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for key in ("http_distinct", "http_returning", "http_ceiling"):
        if not out.get(key):
            continue
        rows = out[key]["rows"]
        gateway = sum(r["errors"] for n, r in rows.items() if n.startswith("gateway"))
        peers = int(sum(r["extra"]["non_2xx"] for n, r in rows.items() if n.startswith("node")))
        checks += [
            _flag(
                f"{key}: the gateway answered every request 200 (no socket errors)",
                f"{gateway} errors",
                gateway == 0,
            ),
            _flag(
                f"{key}: the Node peers accepted every session (timeouts aside)",
                f"{peers} non-2xx",
                peers == 0,
            ),
        ]
    return checks


def _grpc_answers(out: dict[str, Any]) -> list[dict[str, Any]]:
    tables = [("grpc", out["grpc"]["rows"])] if out.get("grpc") else []
    tables += [(k, out[k]) for k in ("grpc_ceiling_64", "grpc_ceiling_1") if out.get(k)]
    checks = []
    for key, rows in tables:
        errors = sum(r["errors"] for r in rows.values())
        checks.append(
            _flag(
                f"{key}: every call answered (grpcload: grpc-status 0 checked)",
                f"{errors} errors",
                errors == 0,
            )
        )
    return checks


def _no_repeats(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Distinct users never repeated, draws never exhausted: no generator wrapped around."""
    checks = []
    for key, what in (
        ("http_distinct", "no session repeated"),
        ("http_returning", "draw not exhausted"),
        ("grpc", "no body repeated (distinct users, random orders)"),
    ):
        if out.get(key):
            rows = out[key]["rows"]
            wraps = sum(r["wraps"] for n, r in rows.items() if n != "Health/Check")
            checks.append(
                _flag(
                    f"{key}: {what}: the load generator never wrapped around",
                    f"{wraps} wraps",
                    wraps == 0,
                )
            )
    return checks


def _light_load_generators(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The load generator shares the machine: it should use a small share of it."""
    checks = []
    for key in ("http_distinct", "http_returning", "grpc"):
        if not out.get(key):
            continue
        worst = max(
            r["loadgen_cores"] / r["extra"]["server_cores"]
            for r in out[key]["rows"].values()
            if r["extra"].get("server_cores")
        )
        checks.append(
            _flag(
                f"{key}: load generator ≤ 1/3 of the server's CPU (worst row)",
                f"{worst:.2f}×",
                worst <= 1 / 3,
            )
        )
    return checks


def _access_lines_on(out: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for key in ("http_distinct", "grpc"):
        if out.get(key):
            per = out[key]["access_lines_per_request"]
            checks.append(
                _flag(
                    f"{key}: JSON access lines really on (one line per request)",
                    f"{per:.2f} lines per request",
                    0.95 <= per <= 1.05,
                )
            )
    return checks


def _grpcload_vs_h2load(out: dict[str, Any]) -> list[dict[str, Any]]:
    ceiling = out.get("grpc_ceiling_64")
    if not ceiling:
        return []
    mine, theirs = ceiling["Health/Check, grpcload"], ceiling["Health/Check"]
    ratio = mine["rps"] / theirs["rps"]
    return [
        _flag(
            "grpcload vs h2load, fixed Health/Check, same server: req/s within ±15%",
            f"{ratio:.2f}× h2load ({mine['loadgen_cores']:.2f} vs "
            f"{theirs['loadgen_cores']:.2f} cores)",
            0.85 <= ratio <= 1.15,
        )
    ]


def _new_orders_sound(out: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    orders = out.get("new_orders") or {}
    for kind in ("sqlite", "postgresql"):
        for name, floor in ((orders.get(kind) or {}).get("floors") or {}).items():
            checks.append(
                _flag(
                    f"new orders ({kind}, {name}): this run allowed 500 orders/s (floor: a "
                    f"bare grpc.aio server waiting {floor['wait_ms']} ms, same driver)",
                    f"{floor['orders_per_s']:,.0f} orders/s",
                    floor["orders_per_s"] >= 500,
                )
            )
        for name, p in (orders.get(kind) or {}).items():
            if not isinstance(p, dict) or "stream_calls" not in p:
                continue
            bad = p["errors"] + p["pending"] + p["not_created"]
            lag = p["double_loop_lag"]["p99_ms"]
            checks += [
                _flag(
                    f"new orders ({kind}, {name}): every call created a SYNCED channel",
                    f"{p['errors']} errors, {p['pending']} pending, {p['not_created']} not created",
                    bad == 0,
                ),
                _flag(
                    f"new orders ({kind}, {name}): driver CPU ≤ half the gateway's",
                    f"{p['driver_cores']:.2f} vs {p['gateway_cores']:.2f} cores",
                    p["driver_cores"] <= 0.5 * p["gateway_cores"],
                ),
                _flag(
                    f"new orders ({kind}, {name}): Stream double not a bottleneck "
                    "(its loop lag p99 ≤ 10 ms)",
                    f"{lag:.1f} ms",
                    lag <= 10,
                ),
            ]
    return checks


def _rss_users_sound(out: dict[str, Any]) -> list[dict[str, Any]]:
    users = out.get("rss_users")
    if not users:
        return []
    return [
        _flag(
            "rss: ≥ 1,000,000 distinct users' tokens, every one answered 200",
            f"{users['users']:,} users, {users['non_200']} non-200",
            users["non_200"] == 0 and users["users"] >= 1_000_000,
        )
    ]


def _flag(target: str, measured: str, met: bool) -> dict[str, Any]:
    return {"target": target, "measured": measured, "value": None, "threshold": None, "met": met}
