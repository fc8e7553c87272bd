"""Interquartile ranges of one sweep's figures, from resampling each step's own requests."""

import json
from pathlib import Path

from bench.loadboot import bootstrap_workload, read_steps
from bench.loadstats import Record

SLO_S = 1.0


def records(latencies: list[float]) -> list[Record]:
    return [Record(i, float(i), float(i), latency, 200) for i, latency in enumerate(latencies)]


def clear_sweep(capacity_rps: float) -> list[tuple[float, float, list[Record]]]:
    """Steps far from the SLO below `capacity_rps` and far past it above: no draw changes a verdict."""
    return [
        (capacity_rps / 2, 10.0, records([0.1] * 30)),
        (capacity_rps, 10.0, records([0.2] * 30)),
        (capacity_rps * 2, 10.0, records([5.0] * 30)),
    ]


def test_steps_far_from_the_slo_resample_to_the_same_capacity_and_ratio() -> None:
    result = bootstrap_workload(
        {"seed": clear_sweep(1.0), "ours": clear_sweep(3.0)}, SLO_S, "seed", 2.0, replicates=50
    )
    assert result["ours"]["capacity_rps"]["iqr"] == [3.0, 3.0]
    assert result["ours"]["ratio_to_baseline"]["iqr"] == [3.0, 3.0]
    assert result["seed"]["ratio_to_baseline"] is None


def test_a_step_on_the_edge_of_the_slo_spreads_the_capacity_between_its_neighbours() -> None:
    # Two slow answers in thirty put this step's P95 just over the SLO; a draw with one or none passes.
    edge = records([0.2] * 28 + [3.0, 3.0])
    sweep = [(1.0, 10.0, records([0.2] * 30)), (1.25, 10.0, edge), (2.5, 10.0, records([5.0] * 30))]
    result = bootstrap_workload({"seed": sweep}, SLO_S, "seed", 2.0, replicates=400)
    assert result["seed"]["capacity_rps"]["iqr"] == [1.0, 1.25]


def test_goodput_past_capacity_is_given_with_its_spread() -> None:
    result = bootstrap_workload({"seed": clear_sweep(2.0)}, SLO_S, "seed", 2.0, replicates=20)
    assert result["seed"]["overload_goodput_vs_capacity"]["median"] == 0.0
    assert result["seed"]["overload_p95_s"]["median"] == 5.0


def test_raw_samples_are_grouped_by_workload_and_contender(tmp_path: Path) -> None:
    raw = tmp_path / "samples.jsonl"
    lines = [
        {
            "workload": w,
            "contender": c,
            "rate_rps": r,
            "duration_s": 10.0,
            "slo_s": 1.0,
            "records": [{"index": 0, "scheduled_s": 0.0, "sent_s": 0.0, "latency_s": 0.1, "status": 200}],
        }
        for w, c, r in [("snippets", "ours", 1.0), ("snippets", "ours", 2.0), ("chat-rag", "ours", 1.0)]
    ]
    raw.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    steps = read_steps(raw)
    assert [rate for rate, _, _ in steps[("snippets", "ours")]] == [1.0, 2.0]
    assert len(steps[("chat-rag", "ours")]) == 1
