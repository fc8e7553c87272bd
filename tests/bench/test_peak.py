"""The int8 peak benchmark's arithmetic: fractions of the larger of the nominal and measured peaks,
and the new recipe's speed-up per round."""

import pytest

from bench.peak import summarize

PEAKS = {"int8": {"nominal": 600.0, "measured": 500.0}, "fp32": {"nominal": 150.0, "measured": 200.0}}
SECONDS = {
    "all-fusions/fp32": [2.0, 2.0, 2.0],
    "all-fusions/int8": [1.2, 1.2, 1.2],
    "server/fp32": [2.0, 2.0, 2.0],
    "server/int8": [1.0, 1.0, 1.0],
}
USEFUL_FLOPS = 300 * 10**9


def test_int8_is_set_against_the_int8_peak_and_fp32_against_the_fp32_peak() -> None:
    summary = summarize(SECONDS, USEFUL_FLOPS, PEAKS)
    assert summary["server/int8"]["useful_gflops"] == pytest.approx(300.0)
    assert summary["server/int8"]["fraction_of_peak"] == pytest.approx(0.5)
    assert summary["server/fp32"]["fraction_of_peak"] == pytest.approx(0.75)


def test_a_core_that_boosts_past_its_nominal_peak_is_quoted_against_what_it_measured() -> None:
    summary = summarize(SECONDS, USEFUL_FLOPS, PEAKS)
    assert summary["server/fp32"]["fraction_of_nominal_peak"] == pytest.approx(1.0)
    assert summary["server/fp32"]["fraction_of_measured_roof"] == pytest.approx(0.75)


def test_the_speed_up_is_the_old_recipe_over_the_new_one_round_by_round() -> None:
    summary = summarize(SECONDS, USEFUL_FLOPS, PEAKS)
    assert summary["speedup/int8"]["median"] == pytest.approx(1.2)
    assert summary["speedup/fp32"]["iqr"] == [1.0, 1.0]
