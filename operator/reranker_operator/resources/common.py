"""What every child manifest shares: its identity and metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reranker_operator import naming


@dataclass(frozen=True)
class ChildRef:
    """Which RerankerDeployment a child belongs to; the child's name and namespace follow from it."""

    cr_name: str
    namespace: str

    @property
    def name(self) -> str:
        return naming.child_name(self.cr_name)


def metadata(ref: ChildRef) -> dict[str, Any]:
    return {"name": ref.name, "namespace": ref.namespace, "labels": naming.labels(ref.cr_name)}
