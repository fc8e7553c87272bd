"""A Prometheus scrape config that labels a local server's series as the Prometheus Operator would.

In a cluster the Prometheus Operator turns the operator's ServiceMonitor into a scrape job over
Kubernetes service discovery: relabelling copies the namespace, service, pod and container,
the ServiceMonitor's podTargetLabels, and the job and endpoint labels onto every series. Here
there is no service discovery, so a static target carries the `__meta_kubernetes_*` labels
that discovery would have attached for the rendered pod, and the same relabelling (generated
from the rendered ServiceMonitor) turns them into the labels the rendered queries select on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def sanitize(label: str) -> str:
    """How Kubernetes service discovery turns a label key into a Prometheus label name."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def servicemonitor_scrape_config(
    servicemonitor: Mapping[str, Any],
    *,
    pod_name: str,
    pod_labels: Mapping[str, str],
    container: str,
    target: str,
    scrape_interval: str,
) -> dict[str, Any]:
    """One scrape job for the ServiceMonitor's first endpoint, scraping `target` as pod `pod_name`."""
    meta = servicemonitor["metadata"]
    spec = servicemonitor["spec"]
    endpoint = spec["endpoints"][0]
    discovered = {
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_service_name": meta["name"],
        "__meta_kubernetes_pod_name": pod_name,
        "__meta_kubernetes_pod_container_name": container,
        "__meta_kubernetes_endpoint_port_name": endpoint["port"],
        **{f"__meta_kubernetes_pod_label_{sanitize(key)}": value for key, value in pod_labels.items()},
    }
    relabelings: list[dict[str, Any]] = [
        {
            "source_labels": ["__meta_kubernetes_endpoint_port_name"],
            "regex": endpoint["port"],
            "action": "keep",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        *(
            {
                "source_labels": [f"__meta_kubernetes_pod_label_{sanitize(label)}"],
                "regex": "(.+)",
                "target_label": sanitize(label),
                "replacement": "${1}",
            }
            for label in spec.get("podTargetLabels", ())
        ),
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"},
        {"target_label": "endpoint", "replacement": endpoint["port"]},
    ]
    return {
        "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/0",
        "honor_labels": endpoint.get("honorLabels", False),
        "metrics_path": endpoint.get("path", "/metrics"),
        "scheme": endpoint.get("scheme", "http"),
        "scrape_interval": scrape_interval,
        "static_configs": [{"targets": [target], "labels": discovered}],
        "relabel_configs": relabelings,
    }


def pod_annotations_scrape_config(
    *,
    namespace: str,
    pod_name: str,
    pod_labels: Mapping[str, str],
    pod_annotations: Mapping[str, str],
    pod_ip: str,
    scrape_interval: str,
) -> dict[str, Any]:
    """The prometheus-community chart's `kubernetes-pods` job, for one pod with these annotations.

    That job keeps pods annotated prometheus.io/scrape: "true", scrapes prometheus.io/port and
    prometheus.io/path on the pod IP, maps every pod label to a label (`labelmap`) and adds
    namespace and pod: the labels the rendered queries select on, without a ServiceMonitor.
    """
    discovered = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": pod_name,
        "__meta_kubernetes_pod_ip": pod_ip,
        "__meta_kubernetes_pod_phase": "Running",
        **{f"__meta_kubernetes_pod_label_{sanitize(key)}": value for key, value in pod_labels.items()},
        **{
            f"__meta_kubernetes_pod_annotation_{sanitize(key)}": value
            for key, value in pod_annotations.items()
        },
    }
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    return {
        "job_name": "kubernetes-pods",
        "honor_labels": True,
        "scrape_interval": scrape_interval,
        # The address is rebuilt from the annotations below; this one is never scraped as it is.
        "static_configs": [{"targets": [f"{pod_ip}:1"], "labels": discovered}],
        "relabel_configs": [
            {"source_labels": [f"{annotation}scrape"], "action": "keep", "regex": "true"},
            {"source_labels": [f"{annotation}path"], "target_label": "__metrics_path__", "regex": "(.+)"},
            {
                "source_labels": [f"{annotation}port", "__meta_kubernetes_pod_ip"],
                "regex": r"(\d+);((([0-9]+?)(\.|$)){4})",
                "replacement": "$2:$1",
                "target_label": "__address__",
            },
            {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "regex": "Pending|Succeeded|Failed|Completed",
                "action": "drop",
            },
        ],
    }
