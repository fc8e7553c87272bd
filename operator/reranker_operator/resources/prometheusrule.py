"""The PrometheusRule: SLO and health alerts for one RerankerDeployment, with runbook text."""

from __future__ import annotations

from typing import Any, Final

from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.resources import promql
from reranker_operator.resources.common import ChildRef, metadata

ERROR_RATIO_THRESHOLD: Final = 0.05
K_CAP_REJECTION_THRESHOLD: Final = 0.05
CRITICAL_SLO_FACTOR: Final = 2


def build_prometheusrule(spec: RerankerDeploymentSpec, ref: ChildRef) -> dict[str, Any]:
    slo_ms = spec.latency_slo.p95_milliseconds
    slo_seconds = slo_ms / 1000
    ns, name = ref.namespace, ref.cr_name
    p95 = promql.p95_seconds(ns, name)
    labels = {"rerankerdeployment": name, "namespace": ns}
    rules = [
        _alert(
            "RerankerP95AboveSLO",
            f"{p95} > {slo_seconds:g}",
            "10m",
            "warning",
            labels,
            f"P95 latency of {ns}/{name} is above its {slo_ms} ms SLO.",
            "Check that the autoscaler adds replicas (kubectl describe hpa or scaledobject); if it is at "
            "replicas.max, raise it, lower maxCandidates or model.maxLength, or use int8 or gpu.",
        ),
        _alert(
            "RerankerP95FarAboveSLO",
            f"{p95} > {slo_seconds * CRITICAL_SLO_FACTOR:g}",
            "5m",
            "critical",
            labels,
            f"P95 latency of {ns}/{name} is more than {CRITICAL_SLO_FACTOR}x its {slo_ms} ms SLO.",
            "Users are waiting. Scale out by hand (raise replicas.min) while investigating the load and the "
            "candidate counts per request.",
        ),
        _alert(
            "RerankerErrorRatioHigh",
            f"{promql.error_ratio(ns, name)} > {ERROR_RATIO_THRESHOLD:g}",
            "10m",
            "warning",
            labels,
            f"More than {ERROR_RATIO_THRESHOLD:.0%} of requests to {ns}/{name} fail with 5xx.",
            "Read the server logs (kubectl logs deploy/<name>) for deadline or overload errors.",
        ),
        _alert(
            "RerankerKCapRejectionsRising",
            f"{promql.k_cap_rejection_ratio(ns, name)} > {K_CAP_REJECTION_THRESHOLD:g}",
            "15m",
            "info",
            labels,
            f"More than {K_CAP_REJECTION_THRESHOLD:.0%} of requests to {ns}/{name} exceed the k cap "
            f"of {spec.max_candidates} documents.",
            "Clients send more candidates than maxCandidates: cut them in the retriever, or raise "
            "maxCandidates together with the SLO or the resources.",
        ),
        _alert(
            "RerankerPodStuckWarmingUp",
            promql.not_ready_pods(ns, name),
            "15m",
            "warning",
            labels,
            f"A pod of {ns}/{name} has not finished model load and warm-up for 15 minutes.",
            "Check the pod's logs and events: model download blocked, cache volume full, or out of memory.",
        ),
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(ref),
        "spec": {"groups": [{"name": f"kube-reranker.{ns}.{name}", "rules": rules}]},
    }


def _alert(
    name: str, expr: str, for_: str, severity: str, labels: dict[str, str], summary: str, runbook: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, **labels},
        "annotations": {"summary": summary, "description": summary, "runbook": runbook},
    }
