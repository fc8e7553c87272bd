"""Metric names and every PromQL string the project ships, in one place.

The HPA, the KEDA ScaledObject, the PrometheusRule and the operator's SLO status all query
these, and the autoscaling tests evaluate exactly these strings against a real Prometheus.
Series of one RerankerDeployment are selected by namespace and by the pod label
app.kubernetes.io/instance, which both scrape paths attach: the ServiceMonitor through
podTargetLabels, annotation-based scrape configs through their usual pod-label labelmap.
"""

from __future__ import annotations

from typing import Final

REQUEST_DURATION: Final = "reranker_request_duration_seconds"
REQUESTS_TOTAL: Final = "reranker_requests_total"
REQUESTS_IN_FLIGHT: Final = "reranker_requests_in_flight"
REJECTIONS_TOTAL: Final = "reranker_rejections_total"
READY: Final = "reranker_ready"

INSTANCE_LABEL: Final = "app_kubernetes_io_instance"
# The custom metric names prometheus-adapter serves to the HPA (its rules must expose these).
HPA_P95_METRIC: Final = "reranker_p95_latency_seconds"
HPA_IN_FLIGHT_METRIC: Final = REQUESTS_IN_FLIGHT
RATE_WINDOW: Final = "2m"


def selector(namespace: str, name: str) -> str:
    return f'namespace="{namespace}",{INSTANCE_LABEL}="{name}"'


def p95_seconds(namespace: str, name: str, window: str = RATE_WINDOW) -> str:
    """Cluster-wide P95 of one RerankerDeployment: buckets summed over pods BEFORE the quantile."""
    return (
        f"histogram_quantile(0.95, sum by (le) "
        f"(rate({REQUEST_DURATION}_bucket{{{selector(namespace, name)}}}[{window}])))"
    )


def in_flight_total(namespace: str, name: str) -> str:
    return f"sum({REQUESTS_IN_FLIGHT}{{{selector(namespace, name)}}})"


def error_ratio(namespace: str, name: str, window: str = "5m") -> str:
    sel = selector(namespace, name)
    return (
        f'sum(rate({REQUESTS_TOTAL}{{{sel},code=~"5.."}}[{window}])) '
        f"/ sum(rate({REQUESTS_TOTAL}{{{sel}}}[{window}]))"
    )


def k_cap_rejection_ratio(namespace: str, name: str, window: str = "10m") -> str:
    sel = selector(namespace, name)
    return (
        f'sum(rate({REJECTIONS_TOTAL}{{{sel},reason="k_cap"}}[{window}])) '
        f"/ sum(rate({REQUESTS_TOTAL}{{{sel}}}[{window}]))"
    )


def not_ready_pods(namespace: str, name: str) -> str:
    return f"{READY}{{{selector(namespace, name)}}} == 0"
