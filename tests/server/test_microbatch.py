"""Micro-batches: every pair once, every call within the token budget, little padding."""

from __future__ import annotations

import numpy as np
import pytest
from reranker_server.microbatch import padding_fraction, plan_micro_batches

BUDGET = 16384


def mixed_lengths(count: int, seed: int = 0) -> np.ndarray:
    """Pair lengths spread from 20 to 500 tokens, like real retrieval output."""
    return np.random.default_rng(seed).integers(20, 501, size=count)


@pytest.mark.parametrize("count", [1, 7, 40, 100, 500])
def test_every_pair_lands_in_exactly_one_micro_batch(count: int) -> None:
    batches = plan_micro_batches(mixed_lengths(count), BUDGET)
    assert sorted(i for batch in batches for i in batch) == list(range(count))


@pytest.mark.parametrize("budget", [512, 2048, 16384])
def test_no_micro_batch_exceeds_the_token_budget(budget: int) -> None:
    lengths = mixed_lengths(300)
    for batch in plan_micro_batches(lengths, budget):
        assert len(batch) * lengths[batch].max() <= budget


def test_long_pairs_count_quadratically_against_the_budget() -> None:
    batches = plan_micro_batches(np.full(100, 512), BUDGET)
    assert max(map(len, batches)) == BUDGET * 256 // 512**2 == 16
    assert sum(map(len, batches)) == 100


def test_pairs_up_to_256_tokens_fill_the_token_budget() -> None:
    assert max(map(len, plan_micro_batches(np.full(200, 256), BUDGET))) == BUDGET // 256


def test_a_pair_longer_than_the_budget_runs_alone() -> None:
    batches = plan_micro_batches([10, 600, 12], 512)
    assert [1] in batches


def test_equal_lengths_are_not_split_needlessly() -> None:
    assert plan_micro_batches(np.full(40, 256), BUDGET) == [list(range(40))]


@pytest.mark.parametrize(("count", "ceiling"), [(40, 0.15), (100, 0.10)])
def test_mixed_lengths_waste_little_on_padding(count: int, ceiling: float) -> None:
    lengths = mixed_lengths(count)
    arrival_order = 1 - lengths.sum() / (count * lengths.max())
    fraction = padding_fraction(lengths, plan_micro_batches(lengths, BUDGET))
    assert fraction <= ceiling < arrival_order


def test_nothing_to_plan_gives_no_batches() -> None:
    assert plan_micro_batches([], BUDGET) == []
