"""What the open-loop sweep sends and when: Poisson arrival times and the ladder of offered rates.

Pure functions (no clock, no I/O), so the schedule and the stopping rule are tested, not timed.

Arrivals at rate r are one seeded unit-rate Poisson process scaled by 1/r: every rate, and every
contender at a given rate, sees the same pattern of bursts and gaps, only compressed. Differences
between steps are then the offered rate's, not a luckier or burstier draw's.

The ladder climbs geometrically from a start derived from the contender's own single-request
latency, until P95 exceeds the SLO (or errors pass their limit), then keeps going to twice that
rate: the shape past capacity (goodput held or collapsed) is half of what is measured. On a
shared machine one step can fail by bad luck: a pass after a failure resumes the climb, so the
sweep only ends on a run of failures that started at the crossing and reached twice its rate.
A contender that fails its very first rung (the start is only an estimate from one request at a
time) is walked down by halves until a rate passes, so its capacity is measured, not left at 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Rates are compared after rounding: a ladder's last rung is exactly the overload multiple of the
#: first failing rate, and float products must not add a rung for the last ulp.
_RATE_EPSILON = 1e-9


def arrival_times(rate_rps: float, duration_s: float, seed: Sequence[int]) -> list[float]:
    """Send offsets in seconds, in [0, duration_s), of a Poisson process at `rate_rps`."""
    if rate_rps <= 0:
        raise ValueError(f"rate must be > 0 requests/s, got {rate_rps}")
    if duration_s <= 0:
        raise ValueError(f"duration must be > 0 s, got {duration_s}")
    rng = np.random.default_rng(np.random.SeedSequence(list(seed)))
    horizon = rate_rps * duration_s  # the schedule's length in unit-rate time
    unit: list[float] = []
    last = 0.0
    # Draw in chunks until past the horizon; the chunks come from one stream, so the result only
    # depends on the seed, never on the chunk size.
    while last < horizon:
        gaps = np.cumsum(rng.exponential(1.0, size=max(16, int(horizon) + 16))) + last
        unit.extend(gaps.tolist())
        last = unit[-1]
    return [t / rate_rps for t in unit if t < horizon]


def step_duration(rate_rps: float, step_s: float, min_requests: int, max_step_s: float) -> float:
    """How long to hold a rate: `step_s`, stretched (up to `max_step_s`) to expect `min_requests`.

    A P95 needs samples: at 0.3 requests/s a 20 s step holds six, and its P95 is its maximum.
    """
    return min(max(step_s, min_requests / rate_rps), max(step_s, max_step_s))


def start_rate(probe_latency_s: float, parallelism: int, fraction: float) -> float:
    """The first rung: `fraction` of what `parallelism` servers of one request at a time sustain.

    A contender that scores one request at a time per worker (the FastAPI recipes, one per core)
    saturates near parallelism / latency; our server runs one pipeline over all cores, so its
    parallelism is 1 (merging requests may carry it further, which the ladder then finds).
    """
    if probe_latency_s <= 0:
        raise ValueError(f"probe latency must be > 0 s, got {probe_latency_s}")
    return fraction * parallelism / probe_latency_s


@dataclass(frozen=True)
class Ladder:
    """Offered rates start_rps x factor^i, up to `overload_multiple` x the first failing rate."""

    start_rps: float
    factor: float
    overload_multiple: float = 2.0
    max_steps: int = 12
    #: How far below the start a contender that fails every rung is walked down (by halves).
    min_fraction_of_start: float = 1 / 8

    def __post_init__(self) -> None:
        if self.start_rps <= 0:
            raise ValueError(f"start rate must be > 0, got {self.start_rps}")
        if self.factor <= 1:
            raise ValueError(f"ladder factor must be > 1, got {self.factor}")
        if self.overload_multiple < 1:
            raise ValueError(f"overload multiple must be >= 1, got {self.overload_multiple}")


def crossing(tried: Sequence[tuple[float, bool]]) -> float | None:
    """The first rate of the trailing run of failures: where the sweep crossed the SLO for good."""
    trailing = None
    for rate, passed in tried:
        if passed:
            trailing = None
        elif trailing is None:
            trailing = rate
    return trailing


def next_rate(ladder: Ladder, tried: Sequence[tuple[float, bool]]) -> float | None:
    """The next offered rate after `tried` ((rate, passed) in the order run), or None when done.

    Done: the step budget is spent, or the last rate reached the overload multiple of the
    crossing. The rungs after the crossing are capped at that multiple so the sweep ends on it
    exactly, whatever the factor.
    """
    if len(tried) >= ladder.max_steps:
        return None
    if not tried:
        return ladder.start_rps
    last = tried[-1][0]
    if not any(passed for _, passed in tried):
        lower = last / 2
        return lower if lower >= ladder.start_rps * ladder.min_fraction_of_start - _RATE_EPSILON else None
    crossed = crossing(tried)
    if crossed is None:
        return last * ladder.factor
    ceiling = crossed * ladder.overload_multiple
    if last >= ceiling - _RATE_EPSILON:
        return None
    return min(last * ladder.factor, ceiling)
