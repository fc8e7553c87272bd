"""The rendered HPA and ScaledObject targets, replayed through the HPA algorithm on chosen series.

Fast up, slow down: what the README promises about scale behaviour, shown with the numbers the
operator renders. The same replay runs on series from a real Prometheus in
tests/e2e/test_prometheus_p95.py.
"""

from __future__ import annotations

import pytest

from tests.autoscaling.hpa import Autoscaler, Signal, hpa_signals, keda_signals, proposal
from tests.autoscaling.rendering import ADAPTER_ONLY, children, cr

SPEC = {
    "model": {"id": "m"},
    "latencySLO": {"p95Milliseconds": 500},
    "replicas": {"min": 2, "max": 20},
    "autoscaling": {"sloHeadroomPercent": 80, "inFlightPerReplica": 8, "scaleDownStabilizationSeconds": 300},
}
HPA = children(
    cr("minilm", {**SPEC, "autoscaling": {**SPEC["autoscaling"], "metricsSource": "prometheus-adapter"}}),
    ADAPTER_ONLY,
)["HorizontalPodAutoscaler"]
SCALED_OBJECT = children(cr("minilm", SPEC))["ScaledObject"]
P95, IN_FLIGHT = (signal.name for signal in hpa_signals(HPA))


def test_the_rendered_targets_are_80_percent_of_the_slo_and_the_in_flight_budget():
    assert hpa_signals(HPA) == [
        Signal("reranker_p95_latency_seconds", 0.4, average=False),
        Signal("reranker_requests_in_flight", 8.0, average=True),
    ]
    assert keda_signals(SCALED_OBJECT) == [Signal("p95-latency", 0.4, False), Signal("in-flight", 8.0, True)]


@pytest.mark.parametrize(
    ("p95", "current", "desired"),
    [(0.2, 4, 2), (0.43, 4, 4), (0.45, 4, 5), (0.8, 4, 8), (0.0, 4, 0), (0.35, 4, 4), (0.3, 4, 3)],
)
def test_a_value_target_proposes_ceil_current_times_metric_over_target_outside_the_tolerance(
    p95, current, desired
):
    assert proposal(Signal("p95", 0.4, average=False), p95, current) == desired


def test_an_average_target_proposes_the_total_over_the_per_pod_budget():
    assert proposal(Signal("in-flight", 8, average=True), 40, current=2) == 5
    assert proposal(Signal("in-flight", 8, average=True), 17, current=2) == 2  # 8.5 per pod: within tolerance


@pytest.mark.parametrize(
    ("make", "rendered"),
    [(Autoscaler.for_hpa, HPA), (Autoscaler.for_scaled_object, SCALED_OBJECT)],
    ids=["adapter", "keda"],
)
def test_p95_over_the_target_scales_up_at_once_in_bounded_steps(make, rendered):
    autoscaler = make(rendered, 2)
    p95, in_flight = (signal.name for signal in autoscaler.signals)
    replicas = [autoscaler.step(t, {p95: 2.0, in_flight: 4}) for t in range(0, 75, 15)]
    # No stabilisation on the way up, but at most x2 or +4 pods (whichever is more) per 30 s.
    assert replicas == [6, 6, 12, 12, 20]


def test_the_leading_in_flight_signal_scales_up_before_p95_moves():
    autoscaler = Autoscaler.for_hpa(HPA, 2)
    assert autoscaler.step(0, {P95: 0.1, IN_FLIGHT: 48}) == 6


def test_scale_down_waits_for_the_stabilisation_window_then_removes_one_pod_a_minute():
    autoscaler = Autoscaler.for_hpa(HPA, 2)
    autoscaler.step(0, {P95: 0.8, IN_FLIGHT: 4})
    assert autoscaler.replicas == 4
    replicas = {t: autoscaler.step(t, {P95: 0.0, IN_FLIGHT: 0}) for t in range(15, 481, 15)}
    assert set(replicas[t] for t in range(15, 300, 15)) == {4}
    assert replicas[300] == 3
    assert replicas[345] == 3
    assert replicas[360] == 2
    assert replicas[480] == 2  # replicas.min


def test_a_missing_metric_never_scales_down():
    autoscaler = Autoscaler.for_hpa(HPA, 5)
    for t in range(0, 900, 15):
        autoscaler.step(t, {P95: None, IN_FLIGHT: 0})
    assert autoscaler.replicas == 5
