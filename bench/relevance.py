"""A synthetic graded relevance task, so a briefly fine-tuned model's scores mean something.

Quantisation fidelity is only measurable on a model whose scores spread: a random head scores
everything alike and any noise reorders it. Here a query is a few keywords and a passage
contains 0..all of them among filler words; relevance is the share it contains. A cross-encoder
learns this in a few hundred steps, and its scores then spread over the whole logit range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

QUERY_KEYWORDS: Final = 4
FILLER_WORDS: Final = (8, 24)


@dataclass(frozen=True)
class LabelledPair:
    query: str
    passage: str
    label: float
    group: int


def _query_keywords(rng: np.random.Generator, pool: Sequence[str]) -> list[str]:
    return [pool[i] for i in rng.choice(len(pool), size=QUERY_KEYWORDS, replace=False)]


def _passage(rng: np.random.Generator, pool: Sequence[str], keywords: list[str], hits: int) -> str:
    fillers: list[str] = []
    wanted = int(rng.integers(*FILLER_WORDS, endpoint=True))
    while len(fillers) < wanted:
        word = pool[int(rng.integers(len(pool)))]
        if word not in keywords:
            fillers.append(word)
    chosen = [keywords[i] for i in rng.choice(len(keywords), size=hits, replace=False)]
    for word in chosen:
        fillers.insert(int(rng.integers(len(fillers) + 1)), word)
    return " ".join(fillers)


def make_groups(pool: Sequence[str], groups: int, per_group: int, seed: int) -> list[LabelledPair]:
    """`groups` queries with `per_group` candidates each, relevance 0, 1/4, ... 1 drawn uniformly."""
    rng = np.random.default_rng(seed)
    pairs: list[LabelledPair] = []
    for group in range(groups):
        keywords = _query_keywords(rng, pool)
        query = " ".join(keywords)
        for _ in range(per_group):
            hits = int(rng.integers(0, QUERY_KEYWORDS, endpoint=True))
            passage = _passage(rng, pool, keywords, hits)
            pairs.append(LabelledPair(query, passage, hits / QUERY_KEYWORDS, group))
    return pairs
