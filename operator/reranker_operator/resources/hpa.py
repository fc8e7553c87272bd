"""The HorizontalPodAutoscaler for the prometheus-adapter path.

P95 is an Object metric on the Service (one cluster-wide P95, not an average of per-pod
P95s) with a Value target; in-flight requests per pod are the leading signal. The HPA
scales on whichever asks for more replicas.
"""

from __future__ import annotations

from typing import Any

from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.resources import promql, scaling
from reranker_operator.resources.common import ChildRef, metadata


def build_hpa(spec: RerankerDeploymentSpec, ref: ChildRef) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(ref),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": ref.name},
            "minReplicas": spec.replicas.min,
            "maxReplicas": spec.replicas.max,
            "metrics": [
                {
                    "type": "Object",
                    "object": {
                        "describedObject": {"apiVersion": "v1", "kind": "Service", "name": ref.name},
                        "metric": {"name": promql.HPA_P95_METRIC},
                        # Milli-units of seconds: 400m is a P95 of 400 ms.
                        "target": {"type": "Value", "value": f"{scaling.p95_target_milliseconds(spec)}m"},
                    },
                },
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": promql.HPA_IN_FLIGHT_METRIC},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(spec.autoscaling.in_flight_per_replica),
                        },
                    },
                },
            ],
            "behavior": scaling.behavior(spec),
        },
    }
