"""The ServiceMonitor (Prometheus Operator) that scrapes the metrics port."""

from __future__ import annotations

from typing import Any

from reranker_operator import naming
from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.resources.common import ChildRef, metadata
from reranker_operator.resources.deployment import METRICS_PATH


def build_servicemonitor(spec: RerankerDeploymentSpec, ref: ChildRef) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(ref),
        "spec": {
            "selector": {"matchLabels": naming.selector_labels(ref.cr_name)},
            # The instance label is how every PromQL string in promql.py selects this deployment.
            "podTargetLabels": [naming.LABEL_INSTANCE],
            "endpoints": [
                {
                    "port": naming.METRICS_PORT_NAME,
                    "path": METRICS_PATH,
                    "interval": "15s",
                    # Keep the server's own `endpoint` label (the route) instead of the port name.
                    "honorLabels": True,
                }
            ],
        },
    }
