"""FLOPs per pair from the model shape."""

import pytest

from bench.flops import flops_for_lengths, flops_per_sequence
from bench.shapes import BERT_BASE, MINILM_L6


def test_minilm_flops_at_256_tokens_match_the_hand_count() -> None:
    s, h, f = 256, 384, 1536
    per_layer = 8 * s * h * h + 4 * s * h * f + 4 * s * s * h
    assert flops_per_sequence(MINILM_L6, 256) == 6 * per_layer


def test_attention_makes_cost_grow_faster_than_length() -> None:
    assert flops_per_sequence(MINILM_L6, 512) > 2 * flops_per_sequence(MINILM_L6, 256)


def test_bert_base_costs_about_eight_times_minilm_per_token() -> None:
    ratio = flops_per_sequence(BERT_BASE, 128) / flops_per_sequence(MINILM_L6, 128)
    assert 7.5 < ratio < 8.5


def test_a_request_costs_the_sum_of_its_pairs_at_their_real_length() -> None:
    expected = flops_per_sequence(MINILM_L6, 100) + flops_per_sequence(MINILM_L6, 200)
    assert flops_for_lengths(MINILM_L6, [100, 200]) == expected


def test_negative_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="tokens"):
        flops_per_sequence(MINILM_L6, -1)
