"""Rank agreement between two score lists, as the int8 fidelity numbers use it."""

import pytest

from bench.fidelity import compare, ranks, spearman, top_overlap


def test_ties_share_their_average_rank() -> None:
    assert ranks([3.0, 1.0, 3.0]).tolist() == [2.5, 1.0, 2.5]


def test_spearman_of_a_monotone_transform_is_one() -> None:
    assert spearman([1.0, 5.0, 2.0, 8.0], [10.0, 50.5, 20.0, 99.0]) == pytest.approx(1.0)


def test_spearman_of_a_reversed_order_is_minus_one() -> None:
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)


def test_spearman_needs_equal_lengths() -> None:
    with pytest.raises(ValueError, match="equal length"):
        spearman([1.0, 2.0], [1.0])


def test_top_overlap_counts_shared_top_items() -> None:
    a = [9.0, 8.0, 7.0, 1.0, 0.0]
    b = [9.0, 0.0, 7.0, 8.0, 1.0]
    assert top_overlap(a, b, 2) == pytest.approx(0.5)


def test_compare_identical_scores_is_perfect() -> None:
    scores = [0.3, -1.2, 2.0, 0.7, 1.1, -0.4]
    result = compare(scores, scores, [0, 0, 0, 1, 1, 1])
    assert result.spearman_per_query_min == pytest.approx(1.0)
    assert result.top5_overlap_min == 1.0
    assert result.max_abs_logit_diff == 0.0
    assert result.queries == 2


def test_compare_reports_the_largest_logit_error() -> None:
    result = compare([0.0, 1.0, 2.0], [0.1, 0.9, 2.3], [0, 0, 0])
    assert result.max_abs_logit_diff == pytest.approx(0.3)
