"""Contender E: levels interleaved in rounds, gains paired per round, the model-only ceiling beside them."""

from __future__ import annotations

from typing import Any

from bench.ceiling import rounds
from bench.concurrency import round_orders, summarize
from bench.targets import concurrency_targets


def level(clients: int, pairs_per_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "clients": clients,
        "pairs_per_s": pairs_per_s,
        "p95_s": 0.1 * clients,
        "server": "D",
        "workload": "short",
        "max_length": 512,
    } | extra


def run(clients: int, pairs_per_s: float, latencies: list[float]) -> dict[str, Any]:
    return {
        "clients": clients,
        "requests": len(latencies),
        "pairs_per_s": pairs_per_s,
        "latencies_s": latencies,
    }


def test_every_other_round_runs_the_levels_in_reverse_so_drift_cancels() -> None:
    assert round_orders((1, 4, 16), 3) == [[1, 4, 16], [16, 4, 1], [1, 4, 16]]


def test_the_gain_is_paired_within_each_round_not_across_a_drifting_machine() -> None:
    one_client = [run(1, 100.0, [0.1]), run(1, 50.0, [0.2]), run(1, 100.0, [0.1])]
    sixteen = [run(16, 120.0, [1.0]), run(16, 60.0, [2.0]), run(16, 120.0, [1.0])]
    level = summarize(sixteen, one_client)
    assert level["gain_per_round"] == [1.2, 1.2, 1.2]
    assert level["gain_vs_one_client"] == 1.2
    assert level["pairs_per_s"] == 120.0
    assert "latencies_s" not in level


def test_latency_percentiles_pool_every_round() -> None:
    rounds_of_one = [run(1, 10.0, [0.1] * 19 + [1.0]), run(1, 10.0, [0.1] * 20)]
    level = summarize(rounds_of_one, rounds_of_one)
    assert level["requests"] == 40
    assert level["median_s"] == 0.1
    assert level["p99_s"] > 0.1


def test_requests_are_merged_in_arrival_order_while_they_fit_the_budget() -> None:
    assert rounds([300, 300, 300, 500, 100], budget=700) == [[0, 1], [2], [3, 4]]


def test_a_request_bigger_than_the_budget_gets_a_round_of_its_own() -> None:
    assert rounds([900, 100, 100], budget=500) == [[0], [1, 2]]


def test_sixteen_clients_are_compared_with_one_client() -> None:
    (verdict,) = concurrency_targets([level(1, 200.0), level(4, 250.0), level(16, 280.0)])
    assert verdict["id"] == "concurrency-short-D"
    assert verdict["measured"] == 1.4
    assert verdict["met"] is True


def test_the_verdict_uses_the_gain_paired_per_round() -> None:
    sixteen = level(16, 280.0, gain_vs_one_client=1.25, gain_per_round=[1.2, 1.25, 1.3], rounds=3)
    (verdict,) = concurrency_targets([level(1, 200.0), sixteen])
    assert verdict["measured"] == 1.25
    assert verdict["met"] is False
    assert "[1.2, 1.25, 1.3]" in verdict["note"]


def test_the_model_only_ceiling_is_reported_beside_the_gain() -> None:
    ceiling = {"lone_pairs_per_s": 300.0, "merged_pairs_per_s": 324.0, "ceiling": 1.08}
    (verdict,) = concurrency_targets([level(1, 266.0, batching_ceiling=ceiling), level(16, 300.0)])
    assert verdict["met"] is False
    assert "300.0 -> 324.0 pairs/s = 1.08x ceiling" in verdict["note"]
