"""The targets of a bench run, each checked against figures measured in that run, and the
checks that the measurements themselves are sound (no errors, nothing repeated that should
not be, access lines really on, grpcload agreeing with h2load).

A target is a dict: ``target`` (what is asked), ``measured`` (the figure, as text), ``value``
and ``threshold`` (numbers), ``met`` (True, False, or None when its suite did not run).
"""

from __future__ import annotations

from typing import Any

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


def _rps(section: dict[str, Any] | None, row: str) -> float | None:
    if not section:
        return None
    found = section["rows"].get(row)
    return found["rps"] if found else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue, met or not (or not measured)."""
    distinct, returning, grpc = out.get("http_distinct"), out.get("http_returning"), out.get("grpc")
    gw_d = _rps(distinct, "gateway")
    health = _rps(grpc, "Health/Check")
    checks = [
        _check(
            "HTTP token, distinct users ≥ 0.7× fast Node peer",
            _ratio(gw_d, _rps(distinct, "node fast peer")),
            0.7,
        ),
        _check(
            "HTTP token, distinct users ≥ 15× seed-style Node peer",
            _ratio(gw_d, _rps(distinct, "node seed peer")),
            15,
        ),
        _check(
            "HTTP token, returning users ≥ 1.0× fast Node peer",
            _ratio(_rps(returning, "gateway"), _rps(returning, "node fast peer")),
            1.0,
        ),
        _check(
            "gRPC IssueToken, distinct users ≥ 0.85× Health/Check",
            _ratio(_rps(grpc, "IssueToken, distinct users"), health),
            0.85,
        ),
        _check(
            "gRPC AuthorizeParticipant, 1 M orders ≥ 0.7× Health/Check",
            _ratio(_rps(grpc, "AuthorizeParticipant, 1 M orders"), health),
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
            _ratio(_rps(distinct, "gateway, JSON access lines"), gw_d),
            0.9,
        ),
        _check(
            "JSON access lines cost ≤ 10%: gRPC IssueToken (distinct users) ≥ 0.9× lines off",
            _ratio(
                _rps(grpc, "IssueToken, distinct users, JSON access lines"),
                _rps(grpc, "IssueToken, distinct users"),
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
    checks: list[dict[str, Any]] = []
    for key in ("http_distinct", "http_returning", "http_ceiling"):
        section = out.get(key)
        if not section:
            continue
        rows = section["rows"]
        gateway = sum(r["errors"] for n, r in rows.items() if n.startswith("gateway"))
        checks.append(
            _flag(
                f"{key}: the gateway answered every request 200 (no socket errors)",
                f"{gateway} errors",
                gateway == 0,
            )
        )
        peers = sum(r["extra"]["non_2xx"] for n, r in rows.items() if n.startswith("node"))
        checks.append(
            _flag(
                f"{key}: the Node peers accepted every session (timeouts aside)",
                f"{peers} non-2xx",
                peers == 0,
            )
        )
    if out.get("grpc"):
        errors = sum(r["errors"] for r in out["grpc"]["rows"].values())
        checks.append(
            _flag("grpc: every call answered grpc-status 0", f"{errors} errors", errors == 0)
        )
    for key in ("grpc_ceiling_64", "grpc_ceiling_1"):
        if out.get(key):
            errors = sum(r["errors"] for r in out[key].values())
            checks.append(_flag(f"{key}: no failed requests", f"{errors} errors", errors == 0))
    for key, rows in (
        ("http_distinct", None),
        ("grpc", ("IssueToken, distinct users", "IssueToken, distinct users, JSON access lines")),
    ):
        section = out.get(key)
        if not section:
            continue
        names = rows or tuple(section["rows"])
        wraps = sum(section["rows"][n]["wraps"] for n in names)
        checks.append(
            _flag(
                f"{key}: no user repeated (load generator never wrapped around)",
                f"{wraps} wraps",
                wraps == 0,
            )
        )
    for key in ("http_returning", "grpc"):
        section = out.get(key)
        if section:
            wraps = sum(r["wraps"] for n, r in section["rows"].items() if n != "Health/Check")
            checks.append(
                _flag(f"{key}: draws not exhausted (no wrap-around)", f"{wraps} wraps", wraps == 0)
            )
    for key in ("http_distinct", "grpc"):
        section = out.get(key)
        if section:
            per = section["access_lines_per_request"]
            checks.append(
                _flag(
                    f"{key}: JSON access lines on (one line per request)",
                    f"{per:.2f} lines per request",
                    0.95 <= per <= 1.05,
                )
            )
    ceiling = out.get("grpc_ceiling_64")
    if ceiling:
        mine = ceiling["Health/Check, grpcload"]["rps"]
        theirs = ceiling["Health/Check"]["rps"]
        checks.append(
            _flag(
                "grpcload vs h2load, fixed Health/Check, same server: within ±15%",
                f"{mine / theirs:.2f}× h2load",
                0.85 <= mine / theirs <= 1.15,
            )
        )
    orders = out.get("new_orders") or {}
    for kind in ("sqlite", "postgresql"):
        for name, phase in (orders.get(kind) or {}).items():
            if isinstance(phase, dict) and "stream_calls" in phase:
                bad = phase["errors"] + phase["pending"] + phase["not_created"]
                checks.append(
                    _flag(
                        f"new orders ({kind}, {name}): every call created a SYNCED channel",
                        f"{phase['errors']} errors, {phase['pending']} pending, "
                        f"{phase['not_created']} not created",
                        bad == 0,
                    )
                )
    users = out.get("rss_users")
    if users:
        checks.append(
            _flag(
                "rss: every distinct user's token answered 200",
                f"{users['users']:,} users, {users['non_200']} non-200",
                users["non_200"] == 0 and users["users"] >= 1_000_000,
            )
        )
    return checks


def _flag(target: str, measured: str, met: bool) -> dict[str, Any]:
    return {"target": target, "measured": measured, "value": None, "threshold": None, "met": met}
