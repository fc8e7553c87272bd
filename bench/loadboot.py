"""Interquartile ranges for one load sweep's figures, by resampling its own requests.

    python -m bench.loadboot bench/results/load.json      # adds "bootstrap" to the results file

A capacity comes from one ladder: each step's P95 and error share rest on 30-400 requests, and
whether a step passes near the crossing is partly luck of the draw. Resampling each step's
records with replacement (same count, a fixed seed), re-deciding every step, and recomputing
capacity, the ratio to the seed's recipe and the goodput past capacity, gives the spread that
sampling alone explains. It does not see drift between runs of the sweep (another day, another
CPU model): for that the sweep itself must be repeated, and its results compared as ratios.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from bench.config import ROOT
from bench.loadstats import Capacity, Record, StepSummary, capacity, summarize_step

REPLICATES: Final = 1000
SEED: Final = 0

Steps = list[tuple[float, float, list[Record]]]


def read_steps(raw_path: Path) -> dict[tuple[str, str], Steps]:
    """(workload, contender) -> [(rate, duration, records)] from a sweep's raw samples file."""
    steps: dict[tuple[str, str], Steps] = {}
    for line in raw_path.read_text().splitlines():
        step = json.loads(line)
        records = [Record(**record) for record in step["records"]]
        steps.setdefault((step["workload"], step["contender"]), []).append(
            (step["rate_rps"], step["duration_s"], records)
        )
    return steps


def resampled_capacity(
    steps: Steps, slo_s: float, rng: np.random.Generator, overload_multiple: float
) -> Capacity:
    """The sweep's capacity with every step's requests drawn again, with replacement."""
    summaries: list[StepSummary] = []
    for rate, duration, records in steps:
        drawn = [records[i] for i in rng.integers(0, len(records), size=len(records))] if records else []
        summaries.append(summarize_step(drawn, rate, duration, slo_s))
    return capacity(summaries, overload_multiple)


def quartiles(values: Sequence[float]) -> dict[str, Any] | None:
    """Median and interquartile range; None when no replicate had a value."""
    if not values:
        return None
    q1, median, q3 = (round(float(q), 3) for q in np.percentile(values, [25, 50, 75]))
    return {"median": median, "iqr": [q1, q3], "replicates": len(values)}


def bootstrap_workload(
    steps: dict[str, Steps],
    slo_s: float,
    baseline: str,
    overload_multiple: float,
    replicates: int = REPLICATES,
    seed: int = SEED,
) -> dict[str, Any]:
    """Per contender: capacity, its ratio to `baseline`'s and goodput at ~2x capacity, as quartiles."""
    rng = np.random.default_rng(seed)
    drawn: dict[str, list[Capacity]] = {key: [] for key in steps}
    for _ in range(replicates):
        for key, contender_steps in steps.items():
            drawn[key].append(resampled_capacity(contender_steps, slo_s, rng, overload_multiple))
    result: dict[str, Any] = {}
    for key, capacities in drawn.items():
        theirs = drawn.get(baseline, [])
        ratios = [
            ours.capacity_rps / base.capacity_rps
            for ours, base in zip(capacities, theirs, strict=False)
            if base.capacity_rps > 0
        ]
        result[key] = {
            "capacity_rps": quartiles([c.capacity_rps for c in capacities]),
            "ratio_to_baseline": quartiles(ratios) if key != baseline else None,
            "overload_goodput_vs_capacity": quartiles(
                [
                    c.overload_goodput_vs_capacity
                    for c in capacities
                    if c.overload_goodput_vs_capacity is not None
                ]
            ),
            "overload_p95_s": quartiles(
                [c.overload_p95_s for c in capacities if c.overload_p95_s is not None]
            ),
        }
    return result


def bootstrap(results: dict[str, Any], raw_path: Path, replicates: int = REPLICATES) -> dict[str, Any]:
    """The quartiles of every workload in a results file, from the raw samples it names."""
    steps = read_steps(raw_path)
    overload_multiple = results["config"]["overload_multiple"]
    out: dict[str, Any] = {"replicates": replicates, "seed": SEED, "workloads": {}}
    for workload in results["workloads"]:
        name = workload["name"]
        per_contender = {contender: s for (w, contender), s in steps.items() if w == name}
        out["workloads"][name] = bootstrap_workload(
            per_contender, workload["slo_ms"] / 1000, results["baseline"], overload_multiple, replicates
        )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--replicates", type=int, default=REPLICATES)
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    raw = Path(results["raw_samples"])
    results["bootstrap"] = bootstrap(results, raw if raw.is_absolute() else ROOT / raw, args.replicates)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["bootstrap"], indent=2))


if __name__ == "__main__":
    main()
