"""FLOPs of one cross-encoder forward pass, from the model shape alone.

Counting multiply-adds as 2 FLOPs and only the matrix products (they are >98% of the work at
these sizes): per layer, Q/K/V/O projections 4*2*s*H^2, feed-forward 2*2*s*H*F, attention
scores and their weighted sum 2*2*s^2*H. Embeddings, layer norms, softmax and the 1-logit head
are left out, so achieved GFLOP/s is a slight underestimate, never flattering.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.shapes import ModelShape


def flops_per_sequence(shape: ModelShape, tokens: int) -> int:
    """FLOPs for one (query, passage) pair of `tokens` tokens, padding excluded."""
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    h, f, s = shape.hidden, shape.intermediate, tokens
    projections = 8 * s * h * h
    feed_forward = 4 * s * h * f
    attention = 4 * s * s * h
    return shape.layers * (projections + feed_forward + attention)


def flops_for_lengths(shape: ModelShape, lengths: Iterable[int]) -> int:
    """Useful FLOPs of a request: each pair at its real length (what padding would add is not work)."""
    return sum(flops_per_sequence(shape, n) for n in lengths)
