"""The PrometheusRule: SLO and health alerts for one RerankerDeployment, with runbook text.

Every alert carries the RerankerDeployment's name and namespace as labels (routing by team or
namespace works without relabelling) and a `runbook` annotation that says what to check and
what to change. The expressions come from promql.py; `promtool test rules` unit tests prove
each alert fires when it should and stays silent otherwise.
"""

from __future__ import annotations

import math
from typing import Any, Final

from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.resources import promql
from reranker_operator.resources.common import ChildRef, metadata

ERROR_RATIO_THRESHOLD: Final = 0.05
K_CAP_REJECTION_THRESHOLD: Final = 0.05
CRITICAL_SLO_FACTOR: Final = 2
# The autoscaler reacts within a minute or two, plus a warm-up; a breach outlasting this is real.
P95_ABOVE_SLO_FOR_MINUTES: Final = 10
P95_FAR_ABOVE_SLO_FOR_MINUTES: Final = 5
ERROR_RATIO_FOR_MINUTES: Final = 10
K_CAP_FOR_MINUTES: Final = 15
MIN_NOT_READY_MINUTES: Final = 15
RERANKERDEPLOYMENT_LABEL: Final = "rerankerdeployment"


def not_ready_minutes(spec: RerankerDeploymentSpec) -> int:
    """Pods may load and warm up for warmup.startupTimeoutSeconds; only longer than that is stuck."""
    return max(MIN_NOT_READY_MINUTES, math.ceil(spec.warmup.startup_timeout_seconds / 60))


def build_prometheusrule(spec: RerankerDeploymentSpec, ref: ChildRef) -> dict[str, Any]:
    slo_ms = spec.latency_slo.p95_milliseconds
    slo_seconds = slo_ms / 1000
    ns, name = ref.namespace, ref.cr_name
    who = f"{ns}/{name}"
    p95 = promql.p95_seconds(ns, name)
    labels = {RERANKERDEPLOYMENT_LABEL: name, promql.NAMESPACE_LABEL: ns}
    stuck = not_ready_minutes(spec)
    rules = [
        _alert(
            "RerankerP95AboveSLO",
            f"{p95} > {slo_seconds:g}",
            P95_ABOVE_SLO_FOR_MINUTES,
            "warning",
            labels,
            f"P95 latency of {who} is above its {slo_ms} ms SLO.",
            f"P95 over the last {promql.RATE_WINDOW} is {{{{ $value | humanizeDuration }}}}.",
            "Check that the autoscaler adds replicas (kubectl describe hpa, or the ScaledObject's HPA); "
            "if it is at replicas.max, raise replicas.max, lower maxCandidates or model.maxLength, or use "
            "int8 or gpu. kubectl get rrd shows the measured P95; its SLOFeasible condition says whether "
            "one request at the k cap already takes longer than the SLO.",
        ),
        _alert(
            "RerankerP95FarAboveSLO",
            f"{p95} > {slo_seconds * CRITICAL_SLO_FACTOR:g}",
            P95_FAR_ABOVE_SLO_FOR_MINUTES,
            "critical",
            labels,
            f"P95 latency of {who} is more than {CRITICAL_SLO_FACTOR}x its {slo_ms} ms SLO.",
            f"P95 over the last {promql.RATE_WINDOW} is {{{{ $value | humanizeDuration }}}}.",
            "Users are waiting. Scale out by hand (raise replicas.min) while investigating the load and the "
            "candidate counts per request (reranker_request_duration_seconds by k_bucket).",
        ),
        _alert(
            "RerankerErrorRatioHigh",
            f"{promql.error_ratio(ns, name)} > {ERROR_RATIO_THRESHOLD:g}",
            ERROR_RATIO_FOR_MINUTES,
            "warning",
            labels,
            f"More than {ERROR_RATIO_THRESHOLD:.0%} of requests to {who} fail with 5xx.",
            f"{{{{ $value | humanizePercentage }}}} of requests failed over the last {promql.ERROR_WINDOW}.",
            f"Read the server logs (kubectl logs -n {ns} deploy/{name}) for deadline, overload or model "
            "errors; 503s while pods drain or warm up point at too few replicas.",
        ),
        _alert(
            "RerankerKCapRejectionsRising",
            f"{promql.k_cap_rejection_ratio(ns, name)} > {K_CAP_REJECTION_THRESHOLD:g}",
            K_CAP_FOR_MINUTES,
            "info",
            labels,
            f"More than {K_CAP_REJECTION_THRESHOLD:.0%} of requests to {who} exceed the k cap of "
            f"{spec.max_candidates} documents.",
            f"{{{{ $value | humanizePercentage }}}} of requests were rejected for the k cap over the last "
            f"{promql.K_CAP_WINDOW}.",
            "Clients send more candidates than maxCandidates: cut them in the retriever, or raise "
            "maxCandidates together with the SLO or the resources (latency grows linearly with k).",
        ),
        _alert(
            "RerankerPodStuckWarmingUp",
            promql.not_ready_pods(ns, name),
            stuck,
            "warning",
            labels,
            f"A pod of {who} has not finished model load and warm-up for {stuck} minutes.",
            "Pod {{ $labels.pod }} reports reranker_ready 0.",
            "Check the pod's logs and events: model download blocked or slow, cache volume full, out of "
            "memory; raise warmup.startupTimeoutSeconds if the model is just large.",
        ),
        _alert(
            "RerankerReplicasUnavailable",
            promql.unavailable_replicas(ns, name),
            stuck,
            "warning",
            labels,
            f"Replicas of {who} have been unavailable for {stuck} minutes.",
            "{{ $value }} replicas are not available (kube-state-metrics).",
            f"kubectl describe rrd -n {ns} {name} says why (Degraded: unschedulable, image pull, crash "
            "loop); pods that never serve /metrics show only here.",
        ),
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(ref),
        "spec": {"groups": [{"name": f"kube-reranker.{ns}.{name}", "rules": rules}]},
    }


def _alert(
    name: str,
    expr: str,
    for_minutes: int,
    severity: str,
    labels: dict[str, str],
    summary: str,
    description: str,
    runbook: str,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": f"{for_minutes}m",
        "labels": {"severity": severity, **labels},
        "annotations": {"summary": summary, "description": description, "runbook": runbook},
    }
