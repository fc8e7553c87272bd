"""Metric names and every PromQL string the project ships, in one place.

The HPA (through the prometheus-adapter rules), the KEDA ScaledObject, the PrometheusRule and
the operator's SLO status all query these, and the autoscaling tests evaluate exactly these
strings against a real Prometheus scraping a real server. Series of one RerankerDeployment are
selected by namespace and by the pod label app.kubernetes.io/instance, which both scrape paths
attach: the ServiceMonitor through podTargetLabels, annotation-based scrape configs through
their usual pod-label labelmap.

The prometheus-adapter rules are the same expressions over the adapter's template holes
(`<<.Series>>`, `<<.LabelMatchers>>`, `<<.GroupBy>>`), so both metric paths compute one P95.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

REQUEST_DURATION: Final = "reranker_request_duration_seconds"
REQUEST_DURATION_BUCKET: Final = f"{REQUEST_DURATION}_bucket"
REQUESTS_TOTAL: Final = "reranker_requests_total"
REQUESTS_IN_FLIGHT: Final = "reranker_requests_in_flight"
REJECTIONS_TOTAL: Final = "reranker_rejections_total"
READY: Final = "reranker_ready"
WARMUP_KCAP_LATENCY: Final = "reranker_warmup_kcap_latency_seconds"
# kube-state-metrics, present wherever kube-prometheus-stack is: sees pods that never serve /metrics.
DEPLOYMENT_UNAVAILABLE: Final = "kube_deployment_status_replicas_unavailable"

INSTANCE_LABEL: Final = "app_kubernetes_io_instance"
NAMESPACE_LABEL: Final = "namespace"
POD_LABEL: Final = "pod"
# The custom metric names prometheus-adapter serves to the HPA (its rules expose these).
HPA_P95_METRIC: Final = "reranker_p95_latency_seconds"
HPA_IN_FLIGHT_METRIC: Final = REQUESTS_IN_FLIGHT
QUANTILE: Final = 0.95
RATE_WINDOW: Final = "2m"
# In-flight is a gauge sampled at each scrape; a short average keeps one burst from deciding.
IN_FLIGHT_WINDOW: Final = "1m"
ERROR_WINDOW: Final = "5m"
K_CAP_WINDOW: Final = "10m"

# prometheus-adapter's template holes, filled per query with the metric, the object's label
# matchers (namespace + the resource label) and the resource label to group by.
ADAPTER_SERIES: Final = "<<.Series>>"
ADAPTER_LABEL_MATCHERS: Final = "<<.LabelMatchers>>"
ADAPTER_GROUP_BY: Final = "<<.GroupBy>>"


def selector(namespace: str, name: str) -> str:
    """The label matchers of one RerankerDeployment's series, written as prometheus-adapter writes them."""
    return f'{NAMESPACE_LABEL}="{namespace}",{INSTANCE_LABEL}="{name}"'


def p95(series: str, group_by: Sequence[str] = ()) -> str:
    """P95 of request latency over every pod: buckets summed over pods BEFORE the quantile.

    An average of per-pod P95s would hide one slow pod behind fast ones; summing the buckets
    gives the P95 that users of the Service feel. With no request in the window
    histogram_quantile yields NaN, which an HPA cannot use (it then refuses to scale down) and
    older KEDA versions turn into a huge negative number; the `or` makes an idle deployment read
    0 instead. No series at all (nothing scraped) stays an empty result, so "idle" and "no data"
    remain different answers.
    """
    rate = f"rate({series}[{RATE_WINDOW}])"
    quantile = f"histogram_quantile({QUANTILE:g}, {_sum(rate, ('le', *group_by))})"
    return f"({quantile} >= 0 or {_sum(rate, group_by)} * 0)"


def in_flight(series: str, group_by: Sequence[str] = ()) -> str:
    """Requests in flight (summed over the group), averaged over a minute of scrapes."""
    return _sum(f"avg_over_time({series}[{IN_FLIGHT_WINDOW}])", group_by)


def _sum(inner: str, group_by: Sequence[str]) -> str:
    return f"sum by ({', '.join(group_by)}) ({inner})" if group_by else f"sum({inner})"


def p95_seconds(namespace: str, name: str) -> str:
    """The P95 the ScaledObject, the alerts and the operator's SLO status read."""
    return p95(f"{REQUEST_DURATION_BUCKET}{{{selector(namespace, name)}}}")


def in_flight_total(namespace: str, name: str) -> str:
    return in_flight(f"{REQUESTS_IN_FLIGHT}{{{selector(namespace, name)}}}")


def adapter_p95_query() -> str:
    """prometheus-adapter's metricsQuery for the Object metric on the Service."""
    return p95(f"{ADAPTER_SERIES}{{{ADAPTER_LABEL_MATCHERS}}}", (ADAPTER_GROUP_BY,))


def adapter_in_flight_query() -> str:
    """prometheus-adapter's metricsQuery for the per-pod metric (grouped by pod)."""
    return in_flight(f"{ADAPTER_SERIES}{{{ADAPTER_LABEL_MATCHERS}}}", (ADAPTER_GROUP_BY,))


def error_ratio(namespace: str, name: str) -> str:
    sel = selector(namespace, name)
    return (
        f'sum(rate({REQUESTS_TOTAL}{{{sel},code=~"5.."}}[{ERROR_WINDOW}])) '
        f"/ sum(rate({REQUESTS_TOTAL}{{{sel}}}[{ERROR_WINDOW}]))"
    )


def k_cap_rejection_ratio(namespace: str, name: str) -> str:
    sel = selector(namespace, name)
    return (
        f'sum(rate({REJECTIONS_TOTAL}{{{sel},reason="k_cap"}}[{K_CAP_WINDOW}])) '
        f"/ sum(rate({REQUESTS_TOTAL}{{{sel}}}[{K_CAP_WINDOW}]))"
    )


def not_ready_pods(namespace: str, name: str) -> str:
    """Pods whose server runs (it serves /metrics) but has not finished model load and warm-up."""
    return f"{READY}{{{selector(namespace, name)}}} == 0"


def unavailable_replicas(namespace: str, name: str) -> str:
    """Replicas kube-state-metrics counts as unavailable: also pods that crash before serving /metrics."""
    return f'{DEPLOYMENT_UNAVAILABLE}{{{NAMESPACE_LABEL}="{namespace}",deployment="{name}"}} > 0'


def warmup_kcap_latency_seconds(namespace: str, name: str) -> str:
    """The slowest pod's warm-up latency of one request at the k cap and maxLength."""
    return f"max({WARMUP_KCAP_LATENCY}{{{selector(namespace, name)}}})"
