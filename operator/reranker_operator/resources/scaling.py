"""Autoscaling numbers shared by the HPA and the KEDA ScaledObject, so both paths behave alike."""

from __future__ import annotations

from typing import Any, Final

from reranker_operator.api import RerankerDeploymentSpec

SCALE_UP_PODS_PER_PERIOD: Final = 4
SCALE_UP_PERIOD_SECONDS: Final = 30
SCALE_DOWN_PODS_PER_PERIOD: Final = 1
SCALE_DOWN_PERIOD_SECONDS: Final = 60


def p95_target_milliseconds(spec: RerankerDeploymentSpec) -> int:
    """The P95 the autoscaler aims for: the SLO times the headroom, so scaling starts before a breach."""
    return max(1, spec.latency_slo.p95_milliseconds * spec.autoscaling.slo_headroom_percent // 100)


def behavior(spec: RerankerDeploymentSpec) -> dict[str, Any]:
    """Fast up (no stabilisation, x2 or +4 pods per 30 s), slow down (a pod a minute after a quiet window).

    Scale-up reacts at once because a latency breach is already user-visible; scale-down waits
    because every new pod pays for model load and warm-up again.
    """
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": SCALE_UP_PERIOD_SECONDS},
                {"type": "Pods", "value": SCALE_UP_PODS_PER_PERIOD, "periodSeconds": SCALE_UP_PERIOD_SECONDS},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": spec.autoscaling.scale_down_stabilization_seconds,
            "selectPolicy": "Min",
            "policies": [
                {
                    "type": "Pods",
                    "value": SCALE_DOWN_PODS_PER_PERIOD,
                    "periodSeconds": SCALE_DOWN_PERIOD_SECONDS,
                }
            ],
        },
    }
