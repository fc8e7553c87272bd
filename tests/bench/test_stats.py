"""Latency summaries and ratios paired by round."""

import pytest

from bench.stats import paired_ratios, relative_spread, summarize


def test_summary_reports_median_tail_and_throughput() -> None:
    summary = summarize([0.1, 0.2, 0.3, 0.4, 1.0], pairs_per_request=40)
    assert summary.median_s == pytest.approx(0.3)
    assert summary.p95_s == pytest.approx(0.88)
    assert summary.pairs_per_s == pytest.approx(40 / 0.3)
    assert summary.n == 5


def test_summary_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no samples"):
        summarize([], pairs_per_request=10)


def test_ratios_pair_samples_of_the_same_round_only() -> None:
    ratio = paired_ratios({1: 1.0, 2: 2.0, 3: 9.0}, {1: 2.0, 2: 4.0, 4: 1.0})
    assert ratio is not None
    assert ratio.n == 2
    assert ratio.median == pytest.approx(0.5)
    assert ratio.min == ratio.max == pytest.approx(0.5)


def test_drift_that_hits_both_contenders_cancels_in_the_paired_ratio() -> None:
    slow_machine = {1: 1.0, 2: 3.0, 3: 2.0}
    ratio = paired_ratios({r: 0.6 * s for r, s in slow_machine.items()}, slow_machine)
    assert ratio is not None
    assert ratio.p25 == pytest.approx(0.6)
    assert ratio.p75 == pytest.approx(0.6)


def test_no_common_round_gives_no_ratio() -> None:
    assert paired_ratios({1: 1.0}, {2: 1.0}) is None


def test_relative_spread_is_iqr_over_median() -> None:
    assert relative_spread([1.0, 1.0, 1.0]) == 0.0
    assert relative_spread([1.0, 2.0, 3.0]) == pytest.approx(0.5)
