"""What the operator renders for the autoscaling tests: the children of every example and of edge specs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Final

import yaml
from reranker_operator import api
from reranker_operator.config import OperatorConfig
from reranker_operator.plan import Capabilities, owned, plan_children
from reranker_operator.resources.common import ChildRef

ROOT: Final = Path(__file__).resolve().parents[2]
EXAMPLES: Final = sorted((ROOT / "examples").glob("*.yaml"))
PROMETHEUS_URL: Final = "http://prometheus-operated.monitoring.svc:9090"
EVERYTHING: Final = Capabilities(service_monitors=True, prometheus_rules=True, scaled_objects=True)
ADAPTER_ONLY: Final = Capabilities(service_monitors=True, prometheus_rules=True)


def example(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def children(cr: dict[str, Any], capabilities: Capabilities = EVERYTHING) -> dict[str, dict[str, Any]]:
    """The children the operator applies for `cr`, owned by it as in a cluster, by kind."""
    meta = {"namespace": "search", **cr["metadata"], "uid": str(uuid.uuid4())}
    ref = ChildRef(cr_name=meta["name"], namespace=meta["namespace"])
    settings = OperatorConfig(prometheus_url=PROMETHEUS_URL)
    plan = plan_children(api.parse_spec(cr["spec"]), ref, settings, capabilities)
    return {child["kind"]: child for child in owned(plan.children, {**cr, "metadata": meta})}


def cr(name: str, spec: dict[str, Any], namespace: str = "search") -> dict[str, Any]:
    return {
        "apiVersion": "kube-reranker.io/v1alpha1",
        "kind": "RerankerDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
