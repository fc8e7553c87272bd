"""The PodDisruptionBudget: node drains take at most one warmed-up replica at a time."""

from __future__ import annotations

from typing import Any

from reranker_operator import naming
from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.resources.common import ChildRef, metadata


def wants_pdb(spec: RerankerDeploymentSpec) -> bool:
    """With one replica a budget would either block drains forever or protect nothing."""
    return spec.replicas.min > 1


def build_pdb(spec: RerankerDeploymentSpec, ref: ChildRef) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(ref),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": naming.selector_labels(ref.cr_name)}},
    }
