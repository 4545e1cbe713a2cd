"""Interleaved rounds: every run once per round, so slow spells of a shared machine hit all
of them alike, and per-metric medians over the rounds.

A round during which the hypervisor stole more than :data:`MAX_STEAL_PCT` of the machine's
CPU in any of its runs is run again (each attempt with fresh inputs: the run gets the
attempt's number), at most ``retries`` times per table; the discarded attempts stay on
record in ``extra["discarded_steal"]``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

from tests.bench.loadgen import Result
from tests.bench.procs import Running

MAX_STEAL_PCT = 5.0
"""A measured run during which the hypervisor stole more CPU than this was disturbed."""


def rounds(
    n: int, runs: dict[str, Callable[[int], Result]], *, retries: int = 0
) -> dict[str, Result]:
    """Run every entry once per round, interleaved, and keep per-metric medians.

    Each entry is called with the attempt number (0, 1, …, at most ``n + retries - 1``), so
    an entry that must not repeat its inputs picks them by it. A disturbed round
    (:func:`disturbed`) is discarded and run again while retries are left."""
    collected: dict[str, list[Result]] = {name: [] for name in runs}
    dropped: dict[str, list[Result]] = {name: [] for name in runs}
    discarded: list[float] = []
    attempt = kept_rounds = 0
    while kept_rounds < n:
        results = {name: run(attempt) for name, run in runs.items()}
        attempt += 1
        stolen = max(_steal(r) for r in results.values())
        if run_again(stolen, len(discarded), retries):
            discarded.append(stolen)
            into = dropped
        else:
            kept_rounds += 1
            into = collected
        for name, result in results.items():
            into[name].append(result)
    medians: dict[str, Result] = {}
    for name, kept_results in collected.items():
        # Totals count the discarded rounds too: the server saw (and logged) them.
        medians[name] = median_result(kept_results, also_sent=dropped[name])
        medians[name].extra["discarded_steal"] = discarded
    return medians


def _steal(result: Result) -> float:
    value = result.extra.get("steal_pct", 0.0)
    return float(value) if isinstance(value, float | int) else 0.0


def disturbed(steal: float) -> bool:
    """Whether a run during which ``steal`` % of the CPU was stolen was disturbed."""
    return steal > MAX_STEAL_PCT


def run_again(steal: float, discarded: int, retries: int) -> bool:
    """Whether a round whose worst run lost ``steal`` % of the CPU is discarded and run
    again, ``discarded`` rounds having been so far out of ``retries`` allowed."""
    return disturbed(steal) and discarded < retries


def cpu_ticks() -> tuple[int, int]:
    """(stolen, all) CPU ticks of this machine so far, every CPU (``/proc/stat``): *stolen*
    is time the hypervisor gave other tenants while this machine had work to run."""
    columns = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(c) for c in columns[:8]]  # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


def steal_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of CPU time stolen between two :func:`cpu_ticks`, in percent."""
    spent = after[1] - before[1]
    return round(100 * (after[0] - before[0]) / spent, 1) if spent > 0 else 0.0


_SUMMED = frozenset({"errors", "wraps"})


def median_result(results: list[Result], *, also_sent: list[Result] | None = None) -> Result:
    """The per-metric median of several rounds of the same run (errors and wraps summed).

    ``requests_total`` and ``sent_total`` count ``also_sent`` too: runs whose figures are
    not kept but whose requests the server handled."""
    first = results[0]
    changes: dict[str, object] = {}
    for f in fields(Result):
        values = [getattr(r, f.name) for r in results]
        if f.name in _SUMMED:
            changes[f.name] = sum(values)
        elif isinstance(values[0], float | int):
            changes[f.name] = statistics.median(values)
    extra = dict(first.extra)
    for key, value in first.extra.items():
        numbers = [v for r in results if isinstance(v := r.extra.get(key), float | int)]
        if isinstance(value, float | int) and len(numbers) == len(results):
            extra[key] = statistics.median(numbers)
    extra["rounds"] = [r.rps for r in results]
    # Totals over the rounds, for counts compared with what the server logged meanwhile.
    every = results + (also_sent or [])
    extra["requests_total"] = sum(r.requests for r in every)
    sent = [r.extra.get("sent") for r in every]
    if all(isinstance(v, int) for v in sent):
        extra["sent_total"] = sum(v for v in sent if isinstance(v, int))
    if all("steal_pct" in r.extra for r in results):
        extra["steal_rounds"] = [r.extra["steal_pct"] for r in results]
    changes["extra"] = extra
    return replace(first, **changes)  # type: ignore[arg-type]


def with_server_cpu(server: Running, run: Callable[[int], Result]) -> Callable[[int], Result]:
    """``run``, noting in ``extra["server_cores"]`` the cores ``server`` kept busy meanwhile
    (its CPU seconds, every thread and child, over the run's wall time, warm-up included) and
    in ``extra["steal_pct"]`` the machine's CPU time stolen meanwhile (:func:`steal_pct`)."""

    def measured(round_no: int) -> Result:
        cpu, ticks, started = server.cpu_seconds(), cpu_ticks(), time.monotonic()
        result = run(round_no)
        cores = (server.cpu_seconds() - cpu) / (time.monotonic() - started)
        stolen = steal_pct(ticks, cpu_ticks())
        extra = {**result.extra, "server_cores": round(cores, 3), "steal_pct": stolen}
        return replace(result, extra=extra)

    return measured
