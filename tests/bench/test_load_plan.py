"""The open-loop sweep's plan: seeded Poisson arrivals and the ladder of offered rates."""

import numpy as np
import pytest

from bench.loadplan import Ladder, arrival_times, next_rate, start_rate, step_duration

SEED = [0, 40, 1000]


def test_arrivals_fall_inside_the_window_in_order() -> None:
    times = arrival_times(5.0, 10.0, SEED)
    assert times == sorted(times)
    assert times[0] >= 0
    assert times[-1] < 10.0


def test_the_same_seed_gives_the_same_arrivals() -> None:
    assert arrival_times(3.0, 20.0, SEED) == arrival_times(3.0, 20.0, SEED)


def test_another_seed_gives_other_arrivals() -> None:
    assert arrival_times(3.0, 20.0, SEED) != arrival_times(3.0, 20.0, [1, 40, 1000])


def test_a_higher_rate_sends_the_lower_rate_schedule_compressed() -> None:
    slow = arrival_times(1.0, 30.0, SEED)
    fast = arrival_times(3.0, 30.0, SEED)
    assert fast[: len(slow)] == pytest.approx([t / 3.0 for t in slow])


def test_arrival_count_is_near_rate_times_duration() -> None:
    count = len(arrival_times(50.0, 100.0, SEED))
    assert abs(count - 5000) < 4 * np.sqrt(5000)


def test_gaps_between_arrivals_are_exponential() -> None:
    gaps = np.diff(arrival_times(50.0, 100.0, SEED))
    assert gaps.mean() == pytest.approx(1 / 50, rel=0.05)
    assert gaps.std() == pytest.approx(1 / 50, rel=0.1)  # exponential: std equals mean


def test_a_non_positive_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        arrival_times(0.0, 10.0, SEED)


def test_a_step_lasts_its_set_duration_when_that_holds_enough_requests() -> None:
    assert step_duration(5.0, step_s=20.0, min_requests=40, max_step_s=60.0) == 20.0


def test_a_slow_rate_is_held_longer_to_expect_enough_requests() -> None:
    assert step_duration(1.0, step_s=20.0, min_requests=40, max_step_s=60.0) == 40.0


def test_a_stretched_step_stops_at_its_longest_duration() -> None:
    assert step_duration(0.1, step_s=20.0, min_requests=40, max_step_s=60.0) == 60.0


def test_the_start_rate_scales_with_parallelism() -> None:
    assert start_rate(0.5, parallelism=2, fraction=0.4) == pytest.approx(1.6)


def test_the_ladder_starts_at_its_start_rate() -> None:
    assert next_rate(Ladder(start_rps=1.5, factor=1.25), []) == 1.5


def test_the_ladder_climbs_by_its_factor_while_steps_pass() -> None:
    assert next_rate(Ladder(1.0, 1.25), [(1.0, True), (1.25, True)]) == pytest.approx(1.5625)


def test_the_rung_after_a_failure_is_capped_at_twice_the_first_failing_rate() -> None:
    ladder = Ladder(1.0, 1.5)
    assert next_rate(ladder, [(1.0, True), (1.5, False), (2.25, False)]) == pytest.approx(3.0)


def test_the_ladder_ends_at_twice_the_first_failing_rate() -> None:
    ladder = Ladder(1.0, 1.5)
    assert next_rate(ladder, [(1.0, True), (1.5, False), (2.25, False), (3.0, False)]) is None


def test_a_pass_after_a_failure_resumes_the_climb() -> None:
    assert next_rate(Ladder(1.0, 2.0), [(1.0, False), (2.0, True)]) == pytest.approx(4.0)


def test_the_end_is_twice_the_start_of_the_last_run_of_failures() -> None:
    tried = [(1.0, False), (2.0, True), (4.0, False), (8.0, False)]
    assert next_rate(Ladder(1.0, 2.0), tried) is None


def test_the_ladder_ends_when_its_step_budget_is_spent() -> None:
    assert next_rate(Ladder(1.0, 2.0, max_steps=2), [(1.0, True), (2.0, True)]) is None


def test_a_ladder_that_does_not_climb_is_refused() -> None:
    with pytest.raises(ValueError, match="factor must be > 1"):
        Ladder(1.0, 1.0)


def test_a_contender_that_fails_its_first_rung_is_walked_down_by_halves() -> None:
    assert next_rate(Ladder(1.0, 1.25), [(1.0, False)]) == pytest.approx(0.5)
    assert next_rate(Ladder(1.0, 1.25), [(1.0, False), (0.5, False)]) == pytest.approx(0.25)


def test_the_climb_resumes_from_the_first_rate_that_passes_below_the_start() -> None:
    assert next_rate(Ladder(1.0, 1.25), [(1.0, False), (0.5, True)]) == pytest.approx(0.625)


def test_the_walk_down_stops_at_its_floor() -> None:
    tried = [(1.0, False), (0.5, False), (0.25, False), (0.125, False)]
    assert next_rate(Ladder(1.0, 1.25), tried) is None
