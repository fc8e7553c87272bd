"""Admission by queued tokens against what can finish before the deadline."""

from __future__ import annotations

import pytest
from reranker_server.admission import BUDGET_HEADROOM, ThroughputEstimate, predicted_finish_s, retry_after_s


def test_an_empty_queue_admits_even_a_request_bigger_than_one_deadline() -> None:
    assert retry_after_s(0, 1_000_000, seconds_per_token=0.001, budget_s=1.0) is None


def test_without_a_measurement_everything_is_admitted() -> None:
    assert retry_after_s(50_000, 1000, seconds_per_token=None, budget_s=1.0) is None


def test_work_that_finishes_within_the_deadline_is_admitted() -> None:
    # 1000 queued + 500 new tokens at 1 ms/token = 1.5 s, within 80 % of a 2 s deadline.
    assert retry_after_s(1000, 500, seconds_per_token=0.001, budget_s=2.0) is None


def test_work_that_cannot_finish_in_time_is_refused_with_a_retry_delay() -> None:
    # 3000 + 500 tokens at 1 ms/token = 3.5 s against a 0.8 x 2 s budget: 1.9 s to drain -> 2 s.
    assert retry_after_s(3000, 500, seconds_per_token=0.001, budget_s=2.0) == 2


def test_retry_delay_is_at_least_one_second() -> None:
    budget_tokens = int(2.0 * BUDGET_HEADROOM / 0.001)
    assert retry_after_s(budget_tokens, 1, seconds_per_token=0.001, budget_s=2.0) == 1


def test_retry_delay_grows_with_the_queue() -> None:
    short = retry_after_s(5_000, 100, seconds_per_token=0.001, budget_s=1.0)
    long = retry_after_s(50_000, 100, seconds_per_token=0.001, budget_s=1.0)
    assert short is not None
    assert long is not None
    assert long > short


def test_throughput_is_unknown_until_inference_is_measured() -> None:
    estimate = ThroughputEstimate()
    estimate.observe_tokenize(1000, 0.1)
    assert estimate.seconds_per_token is None


def test_a_lone_request_costs_its_tokenising_and_its_inference() -> None:
    estimate = ThroughputEstimate()
    estimate.observe_inference(1000, 1.0)
    estimate.observe_tokenize(1000, 0.5)
    assert estimate.seconds_per_token == pytest.approx(0.0015)


def test_the_queue_ahead_drains_at_the_inference_rate_and_only_the_newcomer_is_tokenised_in_line() -> None:
    # 3000 queued at 1 ms/token scored, the newcomer's 500 also tokenised at 0.5 ms/token: 3.75 s.
    assert predicted_finish_s(3000, 500, 0.001, 0.0005) == pytest.approx(3.75)


def test_when_tokenising_is_the_slower_stage_the_queue_drains_at_the_tokenising_rate() -> None:
    # A small model scores at 0.5 ms/token but tokenises at 1 ms/token: 3000 queued + the newcomer's
    # 500 pass the tokeniser at 1 ms/token (3.5 s), and the newcomer is scored after that (0.25 s).
    assert predicted_finish_s(3000, 500, 0.0005, 0.001) == pytest.approx(3.75)


def test_a_tokenising_bound_queue_is_refused_once_its_tokenising_outlasts_the_budget() -> None:
    # Scored alone, 1000 + 500 tokens at 0.1 ms/token would finish in 0.15 s; tokenised at 1 ms/token
    # they take 1.5 s, past 0.8 x 1 s.
    assert retry_after_s(1000, 500, seconds_per_token=0.0001, budget_s=1.0, tokenize_s_per_token=0.001) == 1


def test_tokenising_overlapped_with_inference_is_not_charged_to_the_queue() -> None:
    # At 1.5 ms/token for everything, 1000 + 500 tokens would be 2.25 s, past 0.8 x 2.5 s; scored at
    # 1 ms/token with only the newcomer's tokenising in line they finish at 1.75 s.
    assert (
        retry_after_s(1000, 500, seconds_per_token=0.001, budget_s=2.5, tokenize_s_per_token=0.0005) is None
    )


def test_throughput_follows_new_measurements_gradually() -> None:
    estimate = ThroughputEstimate()
    estimate.observe_inference(1000, 1.0)
    estimate.observe_inference(1000, 2.0)
    assert 0.001 < (estimate.seconds_per_token or 0) < 0.002
