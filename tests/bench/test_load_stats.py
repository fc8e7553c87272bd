"""From per-request records to P95, goodput, shares and capacity at the SLO."""

import pytest

from bench.loadstats import (
    CLIENT_TIMEOUT,
    TRANSPORT_ERROR,
    Record,
    StepSummary,
    capacity,
    capacity_ratio,
    summarize_step,
)

SLO_S = 1.0


def records(latencies: list[float], status: int = 200, first: int = 0) -> list[Record]:
    return [Record(first + i, float(i), float(i), latency, status) for i, latency in enumerate(latencies)]


def step(rate: float, passed: bool, goodput: float | None = None, p95: float = 0.5) -> StepSummary:
    return StepSummary(
        rate_rps=rate,
        duration_s=10.0,
        sent=int(rate * 10),
        ok=int(rate * 10),
        p50_s=p95 / 2,
        p95_s=p95,
        p99_s=p95,
        goodput_rps=rate if goodput is None else goodput,
        error_share=0.0,
        shed_share=0.0,
        timeout_share=0.0,
        server_error_share=0.0,
        send_lag_p99_s=0.0,
        passed=passed,
    )


def test_percentiles_count_only_accepted_answers() -> None:
    summary = summarize_step(records([0.1] * 99) + records([0.05], status=429), 10.0, 10.0, SLO_S)
    assert summary.p50_s == summary.p95_s == pytest.approx(0.1)
    assert summary.ok == 99
    assert summary.sent == 100


def test_goodput_counts_accepted_answers_within_the_slo_per_second() -> None:
    mixed = records([0.2] * 30 + [1.5] * 10) + records([0.1] * 5, status=429)
    assert summarize_step(mixed, 4.5, 10.0, SLO_S).goodput_rps == pytest.approx(3.0)


def test_shed_timeouts_transport_and_server_errors_are_all_errors() -> None:
    sent = (
        records([0.1] * 6)
        + records([0.01], status=429)
        + records([5.0], status=CLIENT_TIMEOUT)
        + records([0.01], status=TRANSPORT_ERROR)
        + records([4.0], status=503)
    )
    summary = summarize_step(sent, 1.0, 10.0, SLO_S)
    assert summary.error_share == pytest.approx(0.4)
    assert summary.shed_share == summary.timeout_share == summary.server_error_share == pytest.approx(0.1)


def test_a_step_with_p95_over_the_slo_fails() -> None:
    assert not summarize_step(records([0.5] * 90 + [1.2] * 10), 10.0, 10.0, SLO_S).passed


def test_a_step_with_one_percent_errors_fails() -> None:
    sent = records([0.1] * 99) + records([0.01], status=429)
    assert not summarize_step(sent, 10.0, 10.0, SLO_S).passed


def test_a_step_under_the_slo_without_errors_passes() -> None:
    assert summarize_step(records([0.1] * 100), 10.0, 10.0, SLO_S).passed


def test_a_step_without_answers_fails_with_no_percentiles() -> None:
    summary = summarize_step(records([5.0] * 10, status=CLIENT_TIMEOUT), 1.0, 10.0, SLO_S)
    assert not summary.passed
    assert summary.p95_s is None
    assert summary.goodput_rps == 0.0


def test_send_lag_is_how_late_requests_went_out() -> None:
    late = [Record(i, float(i), float(i) + 0.25, 0.3, 200) for i in range(10)]
    assert summarize_step(late, 1.0, 10.0, SLO_S).send_lag_p99_s == pytest.approx(0.25)


def test_capacity_is_the_last_passing_rate_below_the_first_failure() -> None:
    steps = [step(1.0, True), step(2.0, True), step(4.0, False), step(8.0, False)]
    result = capacity(steps)
    assert result.capacity_rps == 2.0
    assert result.first_failing_rps == 4.0


def test_a_failure_below_a_pass_does_not_lower_capacity() -> None:
    result = capacity([step(1.0, True), step(2.0, False), step(3.0, True), step(4.0, False)])
    assert result.capacity_rps == 3.0
    assert result.first_failing_rps == 4.0
    assert result.failures_below_capacity == 1


def test_capacity_is_zero_when_the_first_rate_fails() -> None:
    result = capacity([step(1.0, False), step(2.0, False)])
    assert result.capacity_rps == 0.0
    assert result.overload_rate_rps is None


def test_overload_is_the_step_nearest_twice_capacity() -> None:
    steps = [step(1.0, True), step(1.25, False), step(1.5625, False), step(1.95, False), step(2.5, False)]
    assert capacity(steps).overload_rate_rps == 1.95


def test_overload_goodput_is_a_share_of_the_capacity_rate() -> None:
    steps = [step(2.0, True, goodput=1.9), step(4.0, False, goodput=1.8)]
    assert capacity(steps).overload_goodput_vs_capacity == pytest.approx(0.9)


def test_a_sweep_without_failures_has_no_overload() -> None:
    result = capacity([step(1.0, True), step(2.0, True)])
    assert result.capacity_rps == 2.0
    assert result.first_failing_rps is None
    assert result.overload_rate_rps is None


def test_capacity_ratio_is_bracketed_by_the_first_failing_rates() -> None:
    ours = capacity([step(4.0, True), step(5.0, False)])
    theirs = capacity([step(1.0, True), step(1.25, False)])
    ratio = capacity_ratio(ours, theirs)
    assert (ratio.ratio, ratio.low, ratio.high) == pytest.approx((4.0, 3.2, 5.0))


def test_capacity_ratio_is_undefined_when_the_baseline_has_no_capacity() -> None:
    ours = capacity([step(4.0, True), step(5.0, False)])
    theirs = capacity([step(1.0, False)])
    ratio = capacity_ratio(ours, theirs)
    assert ratio.ratio is None
    assert ratio.high is None
    assert ratio.low == pytest.approx(4.0)
