"""Cut pairs into micro-batches: sorted by length, bounded by a token budget, with little padding.

A micro-batch is padded to its longest pair, and every padded token costs as much compute as a
real one. Sorting by length puts similar pairs together; where to cut the sorted list is then a
trade-off between padding (cut often) and per-call overhead (cut rarely), solved exactly here by
dynamic programming. The budget (pairs x padded length) bounds every ONNX Runtime call, which is
what keeps a k=100, 512-token request from allocating gigabytes of attention scores at once.
Attention memory grows with the square of the length, so beyond ATTENTION_REFERENCE_LENGTH tokens
the budget shrinks accordingly: pairs x length^2 <= budget x ATTENTION_REFERENCE_LENGTH.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

#: The fixed cost of one ONNX Runtime call, in tokens of compute: session dispatch, thread-pool
#: wake-up and the poorer efficiency of tiny matrix products. Merging two groups of pairs pays off
#: while the padding it adds stays below this.
CALL_OVERHEAD_TOKENS: Final = 64
#: Up to this many tokens per pair the token budget applies as is; longer pairs count quadratically,
#: since their attention scores do: with a 1024 budget, one 512-token pair per call. On a CPU that is
#: no loss (MiniLM-L6 shape: 150 us per token in fp32 and 80 in int8 for one 512-token pair per
#: call, against 154 and 87 for eight), and memory stays bounded for any max_length.
ATTENTION_REFERENCE_LENGTH: Final = 256


def capacity(width: int, max_batch_tokens: int) -> int:
    """How many pairs of `width` tokens one micro-batch may hold (at least one)."""
    width = max(width, 1)
    if width <= ATTENTION_REFERENCE_LENGTH:
        return max(1, max_batch_tokens // width)
    return max(1, max_batch_tokens * ATTENTION_REFERENCE_LENGTH // (width * width))


def plan_micro_batches(
    lengths: Sequence[int] | np.ndarray,
    max_batch_tokens: int,
    call_overhead_tokens: int = CALL_OVERHEAD_TOKENS,
) -> list[list[int]]:
    """Group pair indices into micro-batches minimising padded tokens + per-call overhead.

    Each micro-batch holds at most `capacity(max(length))` pairs, so it never exceeds
    `max_batch_tokens` padded tokens (a single pair longer than the budget runs alone).
    Every index appears exactly once; batches come out shortest first.
    """
    sizes = np.asarray(lengths, dtype=np.int64)
    count = len(sizes)
    if count == 0:
        return []
    order = np.argsort(sizes, kind="stable")
    ordered = sizes[order]
    # best[j]: the least cost of batching the first j sorted pairs; start[j]: where their last batch begins.
    best = np.zeros(count + 1, dtype=np.float64)
    start = np.zeros(count + 1, dtype=np.int64)
    positions = np.arange(count + 1, dtype=np.float64)
    for end in range(1, count + 1):
        width = int(ordered[end - 1])
        first = max(0, end - capacity(width, max_batch_tokens))
        # A batch of sorted pairs first..end-1 costs (end - first) * width padded tokens plus overhead.
        candidates = best[first:end] - positions[first:end] * width
        choice = int(np.argmin(candidates))
        best[end] = candidates[choice] + end * width + call_overhead_tokens
        start[end] = first + choice
    batches: list[list[int]] = []
    end = count
    while end > 0:
        batches.append(order[start[end] : end].tolist())
        end = int(start[end])
    batches.reverse()
    return batches


def padding_fraction(lengths: Sequence[int] | np.ndarray, batches: list[list[int]]) -> float:
    """Share of computed tokens that are padding, for a given cut (0 = no padding)."""
    sizes = np.asarray(lengths, dtype=np.int64)
    padded = sum(len(batch) * int(sizes[batch].max()) for batch in batches)
    return 1.0 - float(sizes.sum()) / padded if padded else 0.0
