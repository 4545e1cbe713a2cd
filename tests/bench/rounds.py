"""Interleaved rounds: every run once per round, so slow spells of a shared machine hit all
of them alike, and per-metric medians over the rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import fields, replace

from tests.bench.loadgen import Result
from tests.bench.procs import Running


def rounds(n: int, runs: dict[str, Callable[[int], Result]]) -> dict[str, Result]:
    """Run every entry once per round (called with the round number), interleaved, and
    keep per-metric medians."""
    collected: dict[str, list[Result]] = {name: [] for name in runs}
    for round_no in range(n):
        for name, run in runs.items():
            collected[name].append(run(round_no))
    return {name: median_result(results) for name, results in collected.items()}


_SUMMED = frozenset({"errors", "wraps"})


def median_result(results: list[Result]) -> Result:
    """The per-metric median of several rounds of the same run (errors and wraps summed)."""
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
    changes["extra"] = {**extra, "rounds": [r.rps for r in results]}
    return replace(first, **changes)  # type: ignore[arg-type]


def with_server_cpu(server: Running, run: Callable[[int], Result]) -> Callable[[int], Result]:
    """``run``, noting in ``extra["server_cores"]`` the cores ``server`` kept busy meanwhile
    (its CPU seconds, every thread and child, over the run's wall time, warm-up included)."""

    def measured(round_no: int) -> Result:
        cpu, started = server.cpu_seconds(), time.monotonic()
        result = run(round_no)
        cores = (server.cpu_seconds() - cpu) / (time.monotonic() - started)
        return replace(result, extra={**result.extra, "server_cores": round(cores, 3)})

    return measured
