"""The concurrency target: 16 clients vs one, judged with the model-only batching ceiling beside it."""

from __future__ import annotations

from typing import Any

from bench.ceiling import rounds
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


def test_requests_are_merged_in_arrival_order_while_they_fit_the_budget() -> None:
    assert rounds([300, 300, 300, 500, 100], budget=700) == [[0, 1], [2], [3, 4]]


def test_a_request_bigger_than_the_budget_gets_a_round_of_its_own() -> None:
    assert rounds([900, 100, 100], budget=500) == [[0], [1, 2]]


def test_sixteen_clients_are_compared_with_one_client() -> None:
    (verdict,) = concurrency_targets([level(1, 200.0), level(4, 250.0), level(16, 280.0)])
    assert verdict["id"] == "concurrency-short-D"
    assert verdict["measured"] == 1.4
    assert verdict["met"] is True


def test_the_model_only_ceiling_is_reported_beside_the_gain() -> None:
    ceiling = {"lone_pairs_per_s": 300.0, "merged_pairs_per_s": 324.0, "ceiling": 1.08}
    (verdict,) = concurrency_targets([level(1, 266.0, batching_ceiling=ceiling), level(16, 300.0)])
    assert verdict["met"] is False
    assert "300.0 -> 324.0 pairs/s = 1.08x ceiling" in verdict["note"]
