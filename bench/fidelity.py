"""How much int8 changes what a reranker returns: rank correlation, top-n agreement, logit error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.stats import rounded_json


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank (as Spearman's rho needs)."""
    array = np.asarray(values, dtype=float)
    order = np.argsort(array, kind="mergesort")
    ranked = np.empty(len(array), dtype=float)
    ranked[order] = np.arange(1, len(array) + 1)
    for value in np.unique(array):
        tied = array == value
        if tied.sum() > 1:
            ranked[tied] = ranked[tied].mean()
    return ranked


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("spearman needs two sequences of equal length >= 2")
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def top_overlap(a: Sequence[float], b: Sequence[float], n: int) -> float:
    """Share of the top-n items of `a` that are also top-n in `b` (what a RAG prompt would receive)."""
    top_a = set(np.argsort(-np.asarray(a), kind="mergesort")[:n].tolist())
    top_b = set(np.argsort(-np.asarray(b), kind="mergesort")[:n].tolist())
    return len(top_a & top_b) / min(n, len(a))


@dataclass(frozen=True)
class Fidelity:
    pairs: int
    queries: int
    spearman_all: float
    spearman_per_query_mean: float
    spearman_per_query_min: float
    top5_overlap_mean: float
    top5_overlap_min: float
    max_abs_logit_diff: float
    reference_logit_std: float

    def to_json(self) -> dict[str, Any]:
        return rounded_json(self, 5)


def compare(reference: Sequence[float], candidate: Sequence[float], groups: Sequence[int]) -> Fidelity:
    """Candidate logits against reference logits, overall and within each query's candidate list."""
    ref, cand, group_ids = np.asarray(reference), np.asarray(candidate), np.asarray(groups)
    per_query_rho, per_query_top5 = [], []
    for group in np.unique(group_ids):
        mask = group_ids == group
        per_query_rho.append(spearman(ref[mask], cand[mask]))
        per_query_top5.append(top_overlap(ref[mask], cand[mask], 5))
    return Fidelity(
        pairs=len(ref),
        queries=len(per_query_rho),
        spearman_all=spearman(ref, cand),
        spearman_per_query_mean=float(np.mean(per_query_rho)),
        spearman_per_query_min=float(np.min(per_query_rho)),
        top5_overlap_mean=float(np.mean(per_query_top5)),
        top5_overlap_min=float(np.min(per_query_top5)),
        max_abs_logit_diff=float(np.max(np.abs(ref - cand))),
        reference_logit_std=float(ref.std()),
    )
