"""The transformer shapes the benchmark measures: the compute shapes of real rerankers.

Only the shape decides the cost per token, so a seeded random model with the right shape times
like the real one; the vocabulary size only changes the embedding table, not per-token compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class ModelShape:
    """An encoder-only cross-encoder: `layers` blocks of attention + feed-forward, then a 1-logit head."""

    name: str
    stands_for: str
    layers: int
    hidden: int
    heads: int
    intermediate: int

    def describe(self) -> str:
        return (
            f"{self.layers}x{self.hidden} ({self.heads} heads, FFN {self.intermediate}) ~ {self.stands_for}"
        )


MINILM_L6: Final = ModelShape(
    name="minilm-l6-h384",
    stands_for="cross-encoder/ms-marco-MiniLM-L-6-v2",
    layers=6,
    hidden=384,
    heads=12,
    intermediate=1536,
)
BERT_BASE: Final = ModelShape(
    name="bert-base-h768",
    stands_for="BAAI/bge-reranker-base",
    layers=12,
    hidden=768,
    heads=12,
    intermediate=3072,
)
XLMR_LARGE: Final = ModelShape(
    name="xlmr-large-h1024",
    stands_for="BAAI/bge-reranker-v2-m3",
    layers=24,
    hidden=1024,
    heads=16,
    intermediate=4096,
)
SHAPES: Final = {shape.name: shape for shape in (MINILM_L6, BERT_BASE, XLMR_LARGE)}
