"""The Service: the stable in-cluster endpoint (http) and the scrape target (metrics)."""

from __future__ import annotations

from typing import Any

from reranker_operator import naming
from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.resources.common import ChildRef, metadata


def build_service(spec: RerankerDeploymentSpec, ref: ChildRef) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ref),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.selector_labels(ref.cr_name),
            "ports": [
                {
                    "name": naming.HTTP_PORT_NAME,
                    "port": naming.HTTP_PORT,
                    "targetPort": naming.HTTP_PORT_NAME,
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
                {
                    "name": naming.METRICS_PORT_NAME,
                    "port": naming.METRICS_PORT,
                    "targetPort": naming.METRICS_PORT_NAME,
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
            ],
        },
    }
