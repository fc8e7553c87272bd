"""Latency statistics and paired ratios.

Contenders run in interleaved rounds (A B C D, A B C D, ...), so the i-th samples of two
contenders saw the same machine state; their ratio per round cancels most of the drift of a
shared machine, and the spread of those ratios is the honest error bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def rounded_json(record: Any, digits: int) -> dict[str, Any]:
    """A dataclass as JSON with its floats rounded: results files keep the digits that mean something."""
    return {
        key: round(value, digits) if isinstance(value, float) else value
        for key, value in asdict(record).items()
    }


@dataclass(frozen=True)
class LatencySummary:
    n: int
    median_s: float
    p95_s: float
    p99_s: float
    mean_s: float
    min_s: float
    max_s: float
    pairs_per_s: float

    def to_json(self) -> dict[str, Any]:
        return rounded_json(self, 5)


@dataclass(frozen=True)
class RatioSummary:
    """Per-round ratios numerator/denominator: median and the spread across rounds."""

    n: int
    median: float
    p25: float
    p75: float
    min: float
    max: float

    def to_json(self) -> dict[str, Any]:
        return rounded_json(self, 4)


def summarize(seconds: Sequence[float], pairs_per_request: int) -> LatencySummary:
    """Percentiles use linear interpolation: with few samples P95/P99 sit near the max (n is reported)."""
    if not seconds:
        raise ValueError("no samples to summarize")
    values = np.asarray(seconds, dtype=float)
    median = float(np.median(values))
    return LatencySummary(
        n=len(values),
        median_s=median,
        p95_s=float(np.percentile(values, 95)),
        p99_s=float(np.percentile(values, 99)),
        mean_s=float(values.mean()),
        min_s=float(values.min()),
        max_s=float(values.max()),
        pairs_per_s=pairs_per_request / median if median > 0 else float("inf"),
    )


def paired_ratios(numerator: dict[int, float], denominator: dict[int, float]) -> RatioSummary | None:
    """Ratios of samples taken in the same round (keys are round numbers); None when no round has both."""
    rounds = sorted(set(numerator) & set(denominator))
    if not rounds:
        return None
    ratios = np.asarray([numerator[r] / denominator[r] for r in rounds])
    return RatioSummary(
        n=len(ratios),
        median=float(np.median(ratios)),
        p25=float(np.percentile(ratios, 25)),
        p75=float(np.percentile(ratios, 75)),
        min=float(ratios.min()),
        max=float(ratios.max()),
    )


def relative_spread(seconds: Sequence[float]) -> float:
    """Interquartile range over median: how noisy one contender's samples were."""
    values = np.asarray(seconds, dtype=float)
    median = float(np.median(values))
    if median == 0:
        return 0.0
    return float((np.percentile(values, 75) - np.percentile(values, 25)) / median)
