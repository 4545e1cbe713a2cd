"""How the bench folds interleaved rounds into one figure and one ratio."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import pytest

from tests.bench.loadgen import Result
from tests.bench.rounds import cpu_ticks, rounds, steal_pct
from tests.bench.suites.new_orders import median_round
from tests.bench.targets import paired, undisturbed


def _row(rps: float, rounds: list[float] | None) -> dict[str, Any]:
    return {"rps": rps, "extra": {} if rounds is None else {"rounds": rounds}}


def test_paired_ratio_is_the_median_of_per_round_ratios() -> None:
    # Round 2 was a slow spell for both rows: per round the row is 0.9× its base every time,
    # while the ratio of the two medians (800 / 1000) would say 0.8×.
    row = _row(800, [900, 450, 800])
    base = _row(1000, [1000, 500, 1100])
    assert paired(row, base) == pytest.approx(0.9)


def test_paired_falls_back_to_the_medians_without_matching_rounds() -> None:
    assert paired(_row(800, None), _row(1000, [1000, 990])) == pytest.approx(0.8)
    assert paired(_row(800, [800, 810]), _row(1000, [1000, 990, 1010])) == pytest.approx(0.8)


def _phase(rate: float, orders: int, calls: int, *, one: bool = True) -> dict[str, Any]:
    return {
        "orders_per_s": rate,
        "p50_ms": 1000 / rate,
        "orders": orders,
        "synced": orders,
        "pending": 0,
        "not_created": 0,
        "errors": 1,
        "stream_calls": calls,
        "stream_calls_per_order": calls / orders,
        "stream_calls_by_path": {"POST /users": calls - orders, "query": orders},
        "stream_errors": 0,
        "channels": {"count": orders + 1, "created_once": orders + 1},
        "one_channel_per_order": one,
        "steal_pct": 0.5,
    }


def test_median_round_keeps_one_rounds_rates_and_counts_every_round() -> None:
    rounds = [_phase(500, 3000, 4500), _phase(300, 1800, 3600), _phase(400, 2400, 3000)]
    folded = median_round(rounds)
    # Rates and latencies come from one measured round: the median by orders/s.
    assert folded["orders_per_s"] == 400
    assert folded["p50_ms"] == 1000 / 400
    assert folded["rounds"] == [500, 300, 400]
    assert folded["steal_rounds"] == [0.5, 0.5, 0.5]
    # Counts, calls per order and channels cover every round.
    assert folded["orders"] == 7200
    assert folded["errors"] == 3
    assert folded["stream_calls"] == 11100
    assert folded["stream_calls_per_order"] == round(11100 / 7200, 3)
    assert folded["stream_calls_by_path"] == {"POST /users": 3900, "query": 7200}
    assert folded["channels"] == {"count": 7203, "created_once": 7203}
    assert folded["one_channel_per_order"] is True


def test_median_round_fails_the_channel_check_when_any_round_failed_it() -> None:
    rounds = [_phase(500, 10, 10), _phase(300, 10, 10, one=False), _phase(400, 10, 10)]
    assert median_round(rounds)["one_channel_per_order"] is False


def test_median_round_of_an_even_count_keeps_the_lower_middle() -> None:
    folded = median_round([_phase(500, 10, 10), _phase(300, 10, 10)])
    assert folded["orders_per_s"] == 300


def test_steal_is_the_share_of_all_cpu_time_in_percent() -> None:
    assert steal_pct((100, 10_000), (150, 11_000)) == 5.0
    assert steal_pct((100, 10_000), (100, 10_000)) == 0.0
    stolen, total = cpu_ticks()
    assert 0 <= stolen <= total


def test_a_run_with_cpu_stolen_fails_its_suites_check() -> None:
    def row(steal: list[float]) -> dict[str, Any]:
        return {"rps": 1, "errors": 0, "wraps": 0, "extra": {"steal_rounds": steal}}

    calm = {"Health/Check": row([0.5, 1.0]), "IssueToken, distinct users": row([0.0, 2.0])}
    (check,) = undisturbed({"grpc": {"rows": calm}})
    assert check["met"] is True
    busy = {**calm, "AuthorizeParticipant, 1 M orders": row([12.5, 1.0])}
    (check,) = undisturbed({"grpc": {"rows": busy}})
    assert check["met"] is False
    assert check["measured"].startswith("worst 12.5% (AuthorizeParticipant, 1 M orders)")
    assert "1 of 6 runs above" in check["measured"]


def _scripted(steal_by_attempt: list[float], seen: list[int]) -> Callable[[int], Result]:
    """A run whose attempt ``a`` reports ``a`` × 100 req/s and ``steal_by_attempt[a]``."""

    def run(attempt: int) -> Result:
        seen.append(attempt)
        extra: dict[str, object] = {"steal_pct": steal_by_attempt[attempt]}
        return Result("x", rps=100.0 * (attempt + 1), p50_ms=1, p99_ms=2, errors=0, extra=extra)

    return run


def test_a_disturbed_round_is_run_again_with_the_next_attempts_inputs() -> None:
    seen_a: list[int] = []
    seen_b: list[int] = []
    # Attempt 1 was disturbed in run b only: the whole round goes, for both runs.
    runs = {
        "a": _scripted([0.0, 1.0, 0.0, 0.0], seen_a),
        "b": _scripted([0.0, 9.0, 2.0, 0.0], seen_b),
    }
    table = rounds(2, runs, retries=2)
    assert seen_a == seen_b == [0, 1, 2]
    assert table["a"].extra["rounds"] == [100.0, 300.0]
    assert table["b"].extra["discarded_steal"] == [9.0]
    assert table["b"].extra["steal_rounds"] == [0.0, 2.0]


def test_retries_are_bounded_and_a_still_disturbed_round_is_kept() -> None:
    seen: list[int] = []
    table = rounds(2, {"a": _scripted([7.0, 8.0, 9.0, 6.0], seen)}, retries=1)
    # One retry: attempt 0 discarded, attempts 1 and 2 kept although disturbed (the
    # suite's steal check then flags them).
    assert seen == [0, 1, 2]
    assert table["a"].extra["discarded_steal"] == [7.0]
    assert table["a"].extra["steal_rounds"] == [8.0, 9.0]
    (check,) = undisturbed({"grpc": {"rows": {"a": asdict(table["a"])}}})
    assert check["met"] is False
    assert "1 round(s) run again (steal 7%)" in check["measured"]


def test_without_retries_every_round_counts() -> None:
    seen: list[int] = []
    table = rounds(3, {"a": _scripted([50.0, 50.0, 50.0], seen)})
    assert seen == [0, 1, 2]
    assert table["a"].extra["discarded_steal"] == []


def test_request_totals_count_the_discarded_rounds_the_server_also_saw() -> None:
    seen: list[int] = []
    run = _scripted([9.0, 0.0, 0.0], seen)

    def counted(attempt: int) -> Result:
        result = run(attempt)
        return replace(result, requests=1000 + attempt, extra={**result.extra, "sent": 10})

    table = rounds(2, {"a": counted}, retries=1)
    assert table["a"].extra["rounds"] == [200.0, 300.0]  # attempt 0 discarded
    assert table["a"].extra["requests_total"] == 1000 + 1001 + 1002
    assert table["a"].extra["sent_total"] == 30
