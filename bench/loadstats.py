"""From per-request records to what sizes a pod: percentiles, goodput, capacity at the SLO.

Pure functions over `Record`s, so the numbers in the results file can be recomputed from the raw
samples and are tested without timing anything.

Definitions (also in docs/capacity.md):
- latency is measured from the *scheduled* send time, so a generator that falls behind cannot
  hide queueing (no coordinated omission); the lag itself is reported;
- P50/P95/P99 are over the accepted answers (HTTP 200): what the callers who got an answer waited;
- errors are every other outcome (429 shed, 5xx, client timeout, transport error) over all sent;
- goodput: answers with status 200 within the SLO, per second of the sending window;
- a step passes when P95 <= SLO and errors < the limit (1 %); capacity is the highest rate
  that passed, as the issue defines it. The ladder only ends on a run of failures (bench.loadplan),
  so no rate above the capacity passed; failures below it (bad luck on a shared machine) are
  counted in `failures_below_capacity`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from bench.stats import rounded_json

OK: Final = 200
SHED: Final = 429
#: Status of a request the client gave up on at its deadline, and of one whose connection failed.
CLIENT_TIMEOUT: Final = 0
TRANSPORT_ERROR: Final = -1
MAX_ERROR_SHARE: Final = 0.01


@dataclass(frozen=True)
class Record:
    """One request: when it was due, when it went out, how long until its answer, and the answer."""

    index: int
    scheduled_s: float
    sent_s: float
    latency_s: float
    status: int

    def to_json(self) -> dict[str, Any]:
        return rounded_json(self, 5)


@dataclass(frozen=True)
class StepSummary:
    """One offered rate held for `duration_s`."""

    rate_rps: float
    duration_s: float
    sent: int
    ok: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    goodput_rps: float
    error_share: float
    shed_share: float
    timeout_share: float
    server_error_share: float
    send_lag_p99_s: float
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return rounded_json(self, 4)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepSummary:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def summarize_step(
    records: Sequence[Record],
    rate_rps: float,
    duration_s: float,
    slo_s: float,
    max_error_share: float = MAX_ERROR_SHARE,
) -> StepSummary:
    """Percentiles (linear interpolation), shares and goodput of one step; pass/fail at the SLO."""
    sent = len(records)
    accepted = np.asarray([r.latency_s for r in records if r.status == OK], dtype=float)
    percentiles = (
        [float(v) for v in np.percentile(accepted, [50, 95, 99])] if accepted.size else [None, None, None]
    )
    errors = sent - int(accepted.size)
    error_share = _share(errors, sent)
    p95 = percentiles[1]
    lags = [r.sent_s - r.scheduled_s for r in records]
    return StepSummary(
        rate_rps=rate_rps,
        duration_s=duration_s,
        sent=sent,
        ok=int(accepted.size),
        p50_s=percentiles[0],
        p95_s=p95,
        p99_s=percentiles[2],
        goodput_rps=float(np.count_nonzero(accepted <= slo_s)) / duration_s,
        error_share=error_share,
        shed_share=_share(sum(r.status == SHED for r in records), sent),
        timeout_share=_share(sum(r.status == CLIENT_TIMEOUT for r in records), sent),
        server_error_share=_share(sum(r.status >= 500 for r in records), sent),
        send_lag_p99_s=float(np.percentile(lags, 99)) if lags else 0.0,
        passed=sent > 0 and p95 is not None and p95 <= slo_s and error_share < max_error_share,
    )


@dataclass(frozen=True)
class Capacity:
    """Where one contender's sweep crossed the SLO, and how it behaved past that point.

    `capacity_rps` is 0 when no rate passed: the capacity is below the lowest rate tried, and
    `first_failing_rps` (the lowest failing rate above capacity) bounds it; None when no rate
    above capacity failed.
    The overload fields describe the step above capacity nearest (on a log scale) to
    `overload_multiple` x capacity, the issue's "2x our capacity": goodput there as a share of the
    capacity rate, and the P95 of the answers accepted there. The top fields describe the
    sweep's highest rate.
    """

    capacity_rps: float
    first_failing_rps: float | None
    failures_below_capacity: int
    goodput_at_capacity_rps: float | None
    overload_rate_rps: float | None
    overload_goodput_rps: float | None
    overload_goodput_vs_capacity: float | None
    overload_p95_s: float | None
    overload_shed_share: float | None
    overload_timeout_share: float | None
    top_rate_rps: float | None
    top_goodput_vs_capacity: float | None

    def to_json(self) -> dict[str, Any]:
        return rounded_json(self, 4)


def _nearest(steps: Sequence[StepSummary], rate_rps: float) -> StepSummary | None:
    if not steps:
        return None
    return min(steps, key=lambda step: abs(math.log(step.rate_rps / rate_rps)))


def capacity(steps: Sequence[StepSummary], overload_multiple: float = 2.0) -> Capacity:
    """Capacity at the SLO from the steps of one sweep, in any order."""
    ordered = sorted(steps, key=lambda step: step.rate_rps)
    passing = [step for step in ordered if step.passed]
    at_capacity = passing[-1] if passing else None
    rate = at_capacity.rate_rps if at_capacity else 0.0
    above = [step for step in ordered if step.rate_rps > rate]
    first_failing = next((step for step in above if not step.passed), None)
    overload = _nearest(above, overload_multiple * rate) if at_capacity else None
    top = ordered[-1] if ordered else None
    return Capacity(
        capacity_rps=rate,
        first_failing_rps=first_failing.rate_rps if first_failing else None,
        failures_below_capacity=sum(not step.passed and step.rate_rps < rate for step in ordered),
        goodput_at_capacity_rps=at_capacity.goodput_rps if at_capacity else None,
        overload_rate_rps=overload.rate_rps if overload else None,
        overload_goodput_rps=overload.goodput_rps if overload else None,
        overload_goodput_vs_capacity=overload.goodput_rps / rate if overload else None,
        overload_p95_s=overload.p95_s if overload else None,
        overload_shed_share=overload.shed_share if overload else None,
        overload_timeout_share=overload.timeout_share if overload else None,
        top_rate_rps=top.rate_rps if top else None,
        top_goodput_vs_capacity=top.goodput_rps / rate if top and rate > 0 else None,
    )


@dataclass(frozen=True)
class CapacityRatio:
    """ours / theirs, with the bracket the ladder's resolution allows.

    Each capacity is only known to lie in [capacity, first failing rate); the bracket divides the
    ends crosswise. None where theirs is 0 (below its lowest rate) or an end is unknown.
    """

    ratio: float | None
    low: float | None
    high: float | None

    def to_json(self) -> dict[str, Any]:
        return rounded_json(self, 3)


def capacity_ratio(ours: Capacity, theirs: Capacity) -> CapacityRatio:
    ratio = ours.capacity_rps / theirs.capacity_rps if theirs.capacity_rps > 0 else None
    low = ours.capacity_rps / theirs.first_failing_rps if theirs.first_failing_rps else None
    high = (
        ours.first_failing_rps / theirs.capacity_rps
        if ours.first_failing_rps and theirs.capacity_rps > 0
        else None
    )
    return CapacityRatio(ratio=ratio, low=low, high=high)
