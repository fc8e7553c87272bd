"""The KEDA ScaledObject for the keda path (KEDA then owns the HPA).

P95 uses metricType Value: the default AverageValue would divide a latency by the replica
count, which is meaningless for a percentile. In-flight requests are a per-pod average.
KEDA names its HPA keda-hpa-<name>, so switching between the KEDA and prometheus-adapter
paths never finds the other path's HPA under the operator's own HPA name.

ignoreNullValues is off: the P95 query reads 0 when the deployment is idle, so an empty
answer means Prometheus lost the series. KEDA then reports an error and the HPA keeps the
current replicas, instead of reading 0 and scaling down in the middle of an outage.
"""

from __future__ import annotations

from typing import Any

from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.resources import promql, scaling
from reranker_operator.resources.common import ChildRef, metadata


def build_scaledobject(spec: RerankerDeploymentSpec, ref: ChildRef, *, prometheus_url: str) -> dict[str, Any]:
    target_seconds = scaling.p95_target_milliseconds(spec) / 1000
    # KEDA polls every pollingInterval; its HPA reads the cached value, so scale-up waits at most this.
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(ref),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": ref.name},
            "minReplicaCount": spec.replicas.min,
            "maxReplicaCount": spec.replicas.max,
            "pollingInterval": 15,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": scaling.behavior(spec)}},
            "triggers": [
                {
                    "type": "prometheus",
                    "name": "p95-latency",
                    "metricType": "Value",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        "query": promql.p95_seconds(ref.namespace, ref.cr_name),
                        "threshold": f"{target_seconds:g}",
                        "ignoreNullValues": "false",
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
                        "ignoreNullValues": "false",
                    },
                },
            ],
        },
    }
