"""Padding waste of batching policies: how many of the tokens a model runs are padding.

A batch runs len(batch) x longest tokens; the rest of the real-token count is padding. These
are the policies the contenders use, so the measured latencies can be explained by them.
"""

from __future__ import annotations

from collections.abc import Sequence

Batches = list[list[int]]


def padding_fraction(lengths: Sequence[int], batches: Batches) -> float:
    """Share of executed tokens that are padding (0 = none)."""
    real = sum(lengths[i] for batch in batches for i in batch)
    executed = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches if batch)
    if executed == 0:
        return 0.0
    return 1.0 - real / executed


def one_call(lengths: Sequence[int]) -> Batches:
    """The optimum recipe (contender B): every pair in one call, padded to the longest, arrival order."""
    return [list(range(len(lengths)))] if lengths else []


def fixed_size(lengths: Sequence[int], batch_size: int, *, sort: bool) -> Batches:
    """Fixed-size batches; sentence-transformers' CrossEncoder.predict sorts longest first before cutting."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if sort else list(range(len(lengths)))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def token_budget(lengths: Sequence[int], max_batch_tokens: int, *, sort: bool) -> Batches:
    """Greedy micro-batches whose padded size (pairs x longest) stays within a token budget."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i]) if sort else list(range(len(lengths)))
    batches: Batches = []
    current: list[int] = []
    longest = 0
    for index in order:
        candidate_longest = max(longest, lengths[index])
        if current and (len(current) + 1) * candidate_longest > max_batch_tokens:
            batches.append(current)
            current, candidate_longest = [], lengths[index]
        current.append(index)
        longest = candidate_longest
    if current:
        batches.append(current)
    return batches
