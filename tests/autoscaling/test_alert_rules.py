"""The rendered alert rules, checked and unit-tested by the real promtool.

`promtool check rules` parses every rendered group; `promtool test rules` feeds each alert
synthetic series (histograms, counters, gauges with the labels the scrape adds) and asserts it
fires with the expected labels and annotations when it should, and stays silent when it should
not (under the threshold, not for long enough, idle, or another RerankerDeployment's series).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.autoscaling.rendering import EXAMPLES, children, cr, example
from tests.autoscaling.tools import promtool, write_rule_file

NAME, NAMESPACE, POD = "minilm", "search", "minilm-7d9f8-x2x9z"
SPEC = {
    "model": {"id": "cross-encoder/ms-marco-MiniLM-L-6-v2"},
    "maxCandidates": 100,
    "latencySLO": {"p95Milliseconds": 300},
    "warmup": {"startupTimeoutSeconds": 900},
}
RULE = children(cr(NAME, SPEC, NAMESPACE))["PrometheusRule"]
ALERTS = {rule["alert"]: rule for group in RULE["spec"]["groups"] for rule in group["rules"]}
# What a scrape of one server pod attaches (ServiceMonitor: namespace, pod, podTargetLabels).
SCRAPED = {"namespace": NAMESPACE, "app_kubernetes_io_instance": NAME, "pod": POD, "job": NAME}
OTHER = {**SCRAPED, "app_kubernetes_io_instance": "other", "pod": "other-5c6d-q8w7e", "job": "other"}
BUCKETS = ("0.1", "0.25", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1", "+Inf")


def series(name: str, labels: Mapping[str, str], values: str) -> dict[str, str]:
    selector = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return {"series": f"{name}{{{selector}}}", "values": values}


def histogram(labels: Mapping[str, str], upper: str, per_minute: int, minutes: int) -> list[dict[str, str]]:
    """Request-duration buckets of a server whose requests all land in the bucket ending at `upper`."""
    route = {**labels, "endpoint": "/rerank", "k_bucket": "51-100"}
    reached = BUCKETS.index(upper)
    return [
        series(
            "reranker_request_duration_seconds_bucket",
            {**route, "le": le},
            f"0+{per_minute if index >= reached else 0}x{minutes}",
        )
        for index, le in enumerate(BUCKETS)
    ]


def humanize_duration(seconds: float) -> str:
    """Prometheus' humanizeDuration for values under a second."""
    return f"{seconds * 1000:.4g}ms"


def expected(alert: str, value_text: str, extra_labels: Mapping[str, str] = ()) -> dict[str, Any]:
    """The alert as Prometheus sends it: the rule's labels and annotations with the value filled in."""
    rule = ALERTS[alert]
    annotations = dict(rule["annotations"])
    annotations["description"] = (
        annotations["description"]
        .replace("{{ $value | humanizeDuration }}", value_text)
        .replace("{{ $value | humanizePercentage }}", value_text)
        .replace("{{ $value }}", value_text)
        .replace("{{ $labels.pod }}", POD)
    )
    return {"exp_labels": {**dict(extra_labels), **rule["labels"]}, "exp_annotations": annotations}


def case(
    inputs: Sequence[dict[str, str]], alert: str, checks: Sequence[tuple[str, list[dict[str, Any]]]]
) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": list(inputs),
        "alert_rule_test": [
            {"eval_time": at, "alertname": alert, "exp_alerts": alerts} for at, alerts in checks
        ],
    }


def run_unit_tests(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    write_rule_file(RULE, tmp_path / "rules.yaml")
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump(
            {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False
        )
    )
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_promtool_accepts_the_rendered_rule_groups(path, tmp_path):
    rule = children(example(path))["PrometheusRule"]
    write_rule_file(rule, tmp_path / "rules.yaml")
    result = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_p95_above_the_slo_warns_after_ten_minutes_and_not_before(tmp_path):
    slow = histogram(SCRAPED, "0.5", 60, 30)  # P95 = 0.4 + 0.1 x 0.95 = 495 ms > 300 ms
    firing = [expected("RerankerP95AboveSLO", humanize_duration(0.495))]
    run_unit_tests(
        tmp_path,
        [
            case(slow, "RerankerP95AboveSLO", [("8m", []), ("15m", firing)]),
            case(histogram(SCRAPED, "0.25", 60, 30), "RerankerP95AboveSLO", [("20m", [])]),  # 242.5 ms
            case(histogram(SCRAPED, "0.5", 0, 30), "RerankerP95AboveSLO", [("20m", [])]),  # idle
            case(histogram(OTHER, "0.5", 60, 30), "RerankerP95AboveSLO", [("20m", [])]),  # not ours
        ],
    )


def test_p95_far_above_the_slo_is_critical_after_five_minutes(tmp_path):
    very_slow = histogram(SCRAPED, "0.9", 60, 30)  # P95 = 895 ms > 2 x 300 ms
    run_unit_tests(
        tmp_path,
        [
            case(
                very_slow,
                "RerankerP95FarAboveSLO",
                [("4m", []), ("8m", [expected("RerankerP95FarAboveSLO", humanize_duration(0.895))])],
            ),
            case(histogram(SCRAPED, "0.5", 60, 30), "RerankerP95FarAboveSLO", [("20m", [])]),  # 495 ms
        ],
    )


def requests(labels: Mapping[str, str], per_minute: Mapping[str, int], minutes: int) -> list[dict[str, str]]:
    return [
        series(
            "reranker_requests_total", {**labels, "endpoint": "/rerank", "code": code}, f"0+{count}x{minutes}"
        )
        for code, count in per_minute.items()
    ]


def test_a_high_5xx_ratio_warns_and_client_errors_do_not_count(tmp_path):
    failing = requests(SCRAPED, {"200": 90, "500": 10}, 40)
    healthy = requests(SCRAPED, {"200": 80, "413": 18, "503": 2}, 40)
    run_unit_tests(
        tmp_path,
        [
            case(
                failing,
                "RerankerErrorRatioHigh",
                [("5m", []), ("20m", [expected("RerankerErrorRatioHigh", "10%")])],
            ),
            case(healthy, "RerankerErrorRatioHigh", [("30m", [])]),
        ],
    )


def test_rising_k_cap_rejections_inform_after_fifteen_minutes(tmp_path):
    def k_cap(rejected: int) -> list[dict[str, str]]:
        rejections = series("reranker_rejections_total", {**SCRAPED, "reason": "k_cap"}, f"0+{rejected}x40")
        return [*requests(SCRAPED, {"200": 100 - rejected, "413": rejected}, 40), rejections]

    run_unit_tests(
        tmp_path,
        [
            case(
                k_cap(10),
                "RerankerKCapRejectionsRising",
                [("10m", []), ("30m", [expected("RerankerKCapRejectionsRising", "10%")])],
            ),
            case(k_cap(2), "RerankerKCapRejectionsRising", [("30m", [])]),
        ],
    )


def test_a_pod_stuck_in_warm_up_past_its_startup_budget_warns(tmp_path):
    def ready(values: str) -> list[dict[str, str]]:
        return [series("reranker_ready", SCRAPED, values)]

    stuck = [expected("RerankerPodStuckWarmingUp", "", SCRAPED)]
    run_unit_tests(
        tmp_path,
        [
            case(ready("0x40"), "RerankerPodStuckWarmingUp", [("10m", []), ("20m", stuck)]),
            case(ready("0x10 1x30"), "RerankerPodStuckWarmingUp", [("20m", [])]),  # warmed up in 10 min
        ],
    )


def test_replicas_unavailable_past_the_startup_budget_warn(tmp_path):
    def unavailable(values: str) -> list[dict[str, str]]:
        ksm = {"namespace": NAMESPACE, "deployment": NAME, "job": "kube-state-metrics"}
        return [series("kube_deployment_status_replicas_unavailable", ksm, values)]

    ksm_labels = {"deployment": NAME, "job": "kube-state-metrics"}
    run_unit_tests(
        tmp_path,
        [
            case(
                unavailable("1x40"),
                "RerankerReplicasUnavailable",
                [("10m", []), ("20m", [expected("RerankerReplicasUnavailable", "1", ksm_labels)])],
            ),
            case(unavailable("1x10 0x30"), "RerankerReplicasUnavailable", [("20m", [])]),
        ],
    )


def test_every_alert_has_a_unit_test():
    tested = {
        "RerankerP95AboveSLO",
        "RerankerP95FarAboveSLO",
        "RerankerErrorRatioHigh",
        "RerankerKCapRejectionsRising",
        "RerankerPodStuckWarmingUp",
        "RerankerReplicasUnavailable",
    }
    assert set(ALERTS) == tested
