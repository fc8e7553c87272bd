"""The prometheus-adapter values shipped in the chart's docs are the operator's own rules, not a copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from reranker_operator.resources import adapter, promql

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "charts" / "kube-reranker" / "docs" / "prometheus-adapter-values.yaml"
REGENERATE = "reranker-operator adapter-values > charts/kube-reranker/docs/prometheus-adapter-values.yaml"


def test_the_shipped_adapter_values_are_what_the_operator_renders():
    result = subprocess.run(
        [Path(sys.executable).parent / "reranker-operator", "adapter-values"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == SHIPPED.read_text(), f"the shipped values drifted: run `{REGENERATE}`"


def test_the_p95_metric_is_an_object_metric_of_the_service_named_by_the_instance_label():
    (p95, _) = yaml.safe_load(SHIPPED.read_text())["rules"]["custom"]
    assert p95["name"]["as"] == promql.HPA_P95_METRIC
    assert p95["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        promql.INSTANCE_LABEL: {"resource": "service"},
    }
    assert p95["metricsQuery"] == promql.adapter_p95_query()


def test_the_in_flight_metric_is_a_pods_metric_grouped_by_pod():
    (_, in_flight) = adapter.adapter_rules()
    assert in_flight["name"]["as"] == promql.HPA_IN_FLIGHT_METRIC
    assert in_flight["resources"]["overrides"][promql.POD_LABEL] == {"resource": "pod"}
    assert in_flight["metricsQuery"] == (
        "sum by (<<.GroupBy>>) (avg_over_time(<<.Series>>{<<.LabelMatchers>>}[1m]))"
    )
