"""The KEDA ScaledObject for the keda path (KEDA then owns the HPA).

P95 uses metricType Value: the default AverageValue would divide a latency by the replica
count, which is meaningless for a percentile. In-flight requests are a per-pod average.
"""

from __future__ import annotations

from typing import Any

from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.resources import promql, scaling
from reranker_operator.resources.common import ChildRef, metadata


def build_scaledobject(spec: RerankerDeploymentSpec, ref: ChildRef, *, prometheus_url: str) -> dict[str, Any]:
    target_seconds = scaling.p95_target_milliseconds(spec) / 1000
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(ref),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": ref.name},
            "minReplicaCount": spec.replicas.min,
            "maxReplicaCount": spec.replicas.max,
            "pollingInterval": 15,
            "advanced": {
                "horizontalPodAutoscalerConfig": {"name": ref.name, "behavior": scaling.behavior(spec)}
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "name": "p95-latency",
                    "metricType": "Value",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        "query": promql.p95_seconds(ref.namespace, ref.cr_name),
                        "threshold": f"{target_seconds:g}",
                    },
                },
                {
                    "type": "prometheus",
                    "name": "in-flight",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        "query": promql.in_flight_total(ref.namespace, ref.cr_name),
                        "threshold": str(spec.autoscaling.in_flight_per_replica),
                    },
                },
            ],
        },
    }
