"""Deterministic queries and passages for the server tests (the test model's vocabulary covers them)."""

from __future__ import annotations

import random

from reranker_server.testmodel import WORDS

QUERY = "how do rerankers keep latency low under load"


def passages(count: int, *, min_words: int = 3, max_words: int = 200, seed: int = 0) -> list[str]:
    """`count` passages of seeded random lengths and words, so pairs differ in length and content."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(min_words, max_words))) for _ in range(count)]
