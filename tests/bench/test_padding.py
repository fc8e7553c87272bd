"""Padding waste of the batching policies the contenders use."""

import pytest

from bench.padding import fixed_size, one_call, padding_fraction, token_budget


def test_one_call_pads_every_pair_to_the_longest() -> None:
    lengths = [10, 20, 30]
    assert padding_fraction(lengths, one_call(lengths)) == pytest.approx(1 - 60 / 90)


def test_equal_lengths_have_no_padding() -> None:
    assert padding_fraction([64] * 8, one_call([64] * 8)) == 0.0


def test_sorting_before_cutting_reduces_padding() -> None:
    lengths = [500, 20, 480, 30, 470, 25, 490, 35]
    arrival = padding_fraction(lengths, fixed_size(lengths, 2, sort=False))
    sorted_ = padding_fraction(lengths, fixed_size(lengths, 2, sort=True))
    assert sorted_ < arrival / 5


def test_token_budget_batches_stay_within_budget_and_cover_every_pair() -> None:
    lengths = [37, 500, 120, 260, 45, 499, 33, 300, 210, 88] * 4
    batches = token_budget(lengths, 2048, sort=True)
    assert all(len(b) * max(lengths[i] for i in b) <= 2048 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


def test_a_pair_longer_than_the_budget_still_gets_its_own_batch() -> None:
    assert token_budget([600, 10], 512, sort=True) == [[1], [0]]


def test_no_pairs_no_padding() -> None:
    assert padding_fraction([], one_call([])) == 0.0
