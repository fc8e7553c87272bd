"""The seeded request workload: what a retrieval stage hands a reranker.

Passages are made of whole-word vocabulary entries, one token each, so a passage of n words is
exactly n tokens under the model's WordPiece tokenizer and lengths are controlled, not hoped for.
Two kinds of request:
- `equal`: every passage is longer than any max_length, so every pair fills max_length (the
  worst case, and the one where padding cannot matter);
- `mixed`: passage lengths uniform in 20..500 tokens, as chunked retrieval output looks; here a
  recipe that pads every pair to the longest wastes a large share of its work;
- `short`: passages of 16..64 tokens (titles, snippets, sentences), where per-request overhead
  (HTTP, JSON, tokenising, one ONNX Runtime call) is a real share of the work;
- `rag`: passage lengths uniform in 20..256 tokens, the chunks a chat assistant's retrieval hands
  over when its chunker targets 256 tokens (the open-loop load benchmark's chat RAG workload).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

Workload = Literal["equal", "mixed", "short", "rag"]
WORKLOADS: Final[tuple[Workload, ...]] = ("equal", "mixed", "short", "rag")
_WORKLOAD_IDS: Final = {"equal": 1, "mixed": 2, "short": 3, "rag": 4}
EQUAL_PASSAGE_TOKENS: Final = 520
MIXED_MIN_TOKENS: Final = 20
MIXED_MAX_TOKENS: Final = 500
SHORT_TOKENS: Final = (16, 64)
RAG_TOKENS: Final = (20, 256)
QUERY_TOKENS: Final = (6, 12)
SPECIAL_TOKENS_PER_PAIR: Final = 3
_WHOLE_WORD: Final = re.compile(r"[a-z]{3,}")


@dataclass(frozen=True)
class Request:
    query: str
    passages: tuple[str, ...]

    @property
    def k(self) -> int:
        return len(self.passages)

    def pairs(self) -> list[tuple[str, str]]:
        return [(self.query, passage) for passage in self.passages]


def word_pool(vocab: Iterable[str]) -> list[str]:
    """Vocabulary entries that tokenize to themselves: lowercase ASCII whole words, sorted for determinism."""
    return sorted({word for word in vocab if _WHOLE_WORD.fullmatch(word)})


def _rng(seed: int, workload: Workload, k: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _WORKLOAD_IDS[workload], k, index]))


def passage_lengths(rng: np.random.Generator, workload: Workload, k: int) -> list[int]:
    if workload == "equal":
        return [EQUAL_PASSAGE_TOKENS] * k
    if workload == "short":
        return rng.integers(*SHORT_TOKENS, endpoint=True, size=k).tolist()
    if workload == "rag":
        return rng.integers(*RAG_TOKENS, endpoint=True, size=k).tolist()
    return rng.integers(MIXED_MIN_TOKENS, MIXED_MAX_TOKENS, endpoint=True, size=k).tolist()


def make_request(pool: Sequence[str], workload: Workload, k: int, index: int, seed: int = 0) -> Request:
    """Request number `index` of the (workload, k) stream: the same for every contender and every run."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rng = _rng(seed, workload, k, index)
    words = np.asarray(pool)
    query = " ".join(rng.choice(words, size=int(rng.integers(*QUERY_TOKENS, endpoint=True))))
    lengths = passage_lengths(rng, workload, k)
    passages = tuple(" ".join(rng.choice(words, size=n)) for n in lengths)
    return Request(query=query, passages=passages)


def pair_tokens(query_tokens: int, passage_tokens: int, max_length: int) -> int:
    """Tokens of a [CLS] q [SEP] p [SEP] pair after truncating the passage to fit max_length."""
    return min(max_length, query_tokens + passage_tokens + SPECIAL_TOKENS_PER_PAIR)
