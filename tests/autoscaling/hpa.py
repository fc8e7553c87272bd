"""The Kubernetes HPA controller's replica arithmetic, to replay metric series against rendered targets.

Follows the algorithm the Kubernetes documentation describes (and pkg/controller/podautoscaler
implements) for the parts the rendered objects use:

- per metric, usage ratio = value / target (Value), or (total / current) / target (AverageValue);
  within the tolerance (0.1) the metric proposes the current count, else ceil(ratio x current);
- the largest proposal wins; if a metric is missing, a scale-down is not made;
- behavior: stabilisation windows (up: the lowest recommendation in the window, down: the
  highest), then the rate policies (Pods / Percent per period, selectPolicy), then min/max.

KEDA's HPA is an ordinary HPA over External metrics, so one model covers both paths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from reranker_operator.resources.quantity import value as quantity_value

TOLERANCE: Final = 0.1


@dataclass(frozen=True)
class Signal:
    """One metric of an HPA and how its value becomes a replica count."""

    name: str
    target: float
    average: bool  # AverageValue: the value is a total over pods; Value: the value as it is


def proposal(signal: Signal, value: float, current: int, tolerance: float = TOLERANCE) -> int:
    """desired = ceil(current x ratio), unless the ratio is within the tolerance of 1."""
    ratio = value / (signal.target * current) if signal.average else value / signal.target
    if abs(ratio - 1.0) <= tolerance:
        return current
    return math.ceil(ratio * current)


def hpa_signals(hpa: Mapping[str, Any]) -> list[Signal]:
    """The signals of a rendered autoscaling/v2 HPA (Object metric with Value, Pods with AverageValue)."""
    signals = []
    for metric in hpa["spec"]["metrics"]:
        source = metric[metric["type"].lower()]
        target = source["target"]
        if target["type"] == "Value":
            signals.append(Signal(source["metric"]["name"], float(quantity_value(target["value"])), False))
        else:
            signals.append(
                Signal(source["metric"]["name"], float(quantity_value(target["averageValue"])), True)
            )
    return signals


def keda_signals(scaled_object: Mapping[str, Any]) -> list[Signal]:
    """The signals of a rendered ScaledObject: one External metric per trigger."""
    return [
        Signal(trigger["name"], float(trigger["metadata"]["threshold"]), trigger.get("metricType") != "Value")
        for trigger in scaled_object["spec"]["triggers"]
    ]


@dataclass
class Autoscaler:
    """One HPA: replicas, recommendations and scale events, stepped at each sync."""

    signals: Sequence[Signal]
    min_replicas: int
    max_replicas: int
    behavior: Mapping[str, Any]
    replicas: int
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    events: list[tuple[float, int]] = field(default_factory=list)

    @classmethod
    def for_hpa(cls, hpa: Mapping[str, Any], replicas: int) -> Autoscaler:
        spec = hpa["spec"]
        return cls(hpa_signals(hpa), spec["minReplicas"], spec["maxReplicas"], spec["behavior"], replicas)

    @classmethod
    def for_scaled_object(cls, scaled_object: Mapping[str, Any], replicas: int) -> Autoscaler:
        spec = scaled_object["spec"]
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        return cls(
            keda_signals(scaled_object), spec["minReplicaCount"], spec["maxReplicaCount"], behavior, replicas
        )

    def desired(self, values: Mapping[str, float | None]) -> int:
        """The metrics' proposal before behavior: the largest, but no scale-down on missing metrics."""
        proposals = [
            proposal(signal, values[signal.name], self.replicas)
            for signal in self.signals
            if values.get(signal.name) is not None
        ]
        if not proposals:
            return self.replicas
        wanted = max(proposals)
        if len(proposals) < len(self.signals) and wanted < self.replicas:
            return self.replicas
        return wanted

    def step(self, now: float, values: Mapping[str, float | None]) -> int:
        """One sync at time `now` (seconds): returns and applies the new replica count."""
        desired = self._stabilized(now, self.desired(values))
        new = self._rate_limited(now, desired)
        if new != self.replicas:
            self.events.append((now, new - self.replicas))
            self.replicas = new
        return new

    def _stabilized(self, now: float, desired: int) -> int:
        up_window = self.behavior["scaleUp"]["stabilizationWindowSeconds"]
        down_window = self.behavior["scaleDown"]["stabilizationWindowSeconds"]
        up, down = desired, desired
        for at, recommendation in self.recommendations:
            if at > now - up_window:
                up = min(up, recommendation)
            if at > now - down_window:
                down = max(down, recommendation)
        self.recommendations.append((now, desired))
        return min(max(self.replicas, up), down)

    def _rate_limited(self, now: float, desired: int) -> int:
        if desired > self.replicas:
            limit = max(self._limit(now, self.behavior["scaleUp"], up=True), self.replicas)
            return min(desired, limit, self.max_replicas)
        if desired < self.replicas:
            limit = min(self._limit(now, self.behavior["scaleDown"], up=False), self.replicas)
            return max(desired, limit, self.min_replicas)
        return min(max(desired, self.min_replicas), self.max_replicas)

    def _limit(self, now: float, rules: Mapping[str, Any], *, up: bool) -> int:
        limits = []
        for policy in rules["policies"]:
            period = policy["periodSeconds"]
            changed = sum(change for at, change in self.events if at > now - period)
            start = self.replicas - changed
            if policy["type"] == "Pods":
                limits.append(start + policy["value"] if up else start - policy["value"])
            elif up:
                limits.append(math.ceil(start * (1 + policy["value"] / 100)))
            else:
                limits.append(math.floor(start * (1 - policy["value"] / 100)))
        # selectPolicy Max lets the policy allowing the biggest change win; Min the smallest.
        biggest_change = rules.get("selectPolicy", "Max") == "Max"
        return (max if up == biggest_change else min)(limits)
