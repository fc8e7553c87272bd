"""Decide which children a RerankerDeployment needs in a given cluster: pure, no I/O.

The reconcile loop feeds in what the cluster serves (its Capabilities); `reranker-operator
render` feeds in what the user says it serves (nothing by default, which shows the
prometheus-adapter path unless keda is asked for).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import kopf

from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.config import OperatorConfig
from reranker_operator.resources.common import ChildRef
from reranker_operator.resources.deployment import build_deployment
from reranker_operator.resources.hpa import build_hpa
from reranker_operator.resources.networkpolicy import build_preparation_policy, build_server_policy
from reranker_operator.resources.pdb import build_pdb, wants_pdb
from reranker_operator.resources.preparation import Preparation, plan_preparation
from reranker_operator.resources.prometheusrule import build_prometheusrule
from reranker_operator.resources.scaledobject import build_scaledobject
from reranker_operator.resources.service import build_service
from reranker_operator.resources.servicemonitor import build_servicemonitor

MetricsSource = Literal["keda", "prometheus-adapter"]


@dataclass(frozen=True)
class Capabilities:
    """Which optional APIs (from CRDs) the cluster serves."""

    service_monitors: bool = False
    prometheus_rules: bool = False
    scaled_objects: bool = False


@dataclass(frozen=True)
class Problem:
    """Something the spec asks for that this cluster or operator cannot provide; says what to fix."""

    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    children: tuple[dict[str, Any], ...]
    metrics_source: MetricsSource | None
    preparation: Preparation
    problems: tuple[Problem, ...] = field(default=())
    #: The preparation Job's NetworkPolicy, shared like the Job; None without a Job or with policies off.
    preparation_policy: dict[str, Any] | None = None

    @property
    def shared(self) -> tuple[dict[str, Any], ...]:
        """What other RerankerDeployments may share (claim, Job, its policy): owners added, never pruned."""
        candidates = (self.preparation.claim, self.preparation_policy, self.preparation.job)
        return tuple(obj for obj in candidates if obj is not None)


def image_for(spec: RerankerDeploymentSpec, config: OperatorConfig) -> str:
    if spec.image:
        return spec.image
    return config.server_gpu_image if spec.backend == "gpu" else config.server_image


def choose_metrics_source(
    spec: RerankerDeploymentSpec, config: OperatorConfig, capabilities: Capabilities
) -> tuple[MetricsSource | None, tuple[Problem, ...]]:
    autoscaling = spec.autoscaling
    if not autoscaling.enabled:
        return None, ()
    if autoscaling.metrics_source == "prometheus-adapter":
        return "prometheus-adapter", ()
    keda_ready = capabilities.scaled_objects and config.prometheus_url is not None
    if autoscaling.metrics_source == "auto":
        return ("keda" if keda_ready else "prometheus-adapter"), ()
    problems = []
    if not capabilities.scaled_objects:
        problems.append(
            Problem(
                "KEDAUnavailable",
                "autoscaling.metricsSource is keda but the cluster serves no keda.sh/v1alpha1 ScaledObject: "
                "install KEDA, or set autoscaling.metricsSource to prometheus-adapter or auto",
            )
        )
    if config.prometheus_url is None:
        problems.append(
            Problem(
                "PrometheusURLMissing",
                "autoscaling.metricsSource is keda but the operator has no Prometheus URL for the trigger: "
                "set RERANKER_OPERATOR_PROMETHEUS_URL (the chart's operator.prometheusUrl value)",
            )
        )
    return (None, tuple(problems)) if problems else ("keda", ())


def plan_children(
    spec: RerankerDeploymentSpec, ref: ChildRef, config: OperatorConfig, capabilities: Capabilities
) -> Plan:
    """The complete desired set of children, unowned (the caller adopts them)."""
    source, problems = choose_metrics_source(spec, config, capabilities)
    preparation = plan_preparation(spec, ref, image=config.export_image)
    children: list[dict[str, Any]] = [
        build_deployment(
            spec,
            ref,
            image=image_for(spec, config),
            autoscaled=source is not None,
            preparation=preparation,
            export_image=config.export_image,
        ),
        build_service(spec, ref),
    ]
    if source == "prometheus-adapter":
        children.append(build_hpa(spec, ref))
    elif source == "keda":
        assert config.prometheus_url is not None  # choose_metrics_source checked it
        children.append(build_scaledobject(spec, ref, prometheus_url=config.prometheus_url))
    if wants_pdb(spec):
        children.append(build_pdb(spec, ref))
    preparation_policy = None
    if spec.network_policy.enabled:
        children.append(build_server_policy(spec, ref, prepares_in_pod=not preparation.shared))
        if preparation.job is not None:
            preparation_policy = build_preparation_policy(spec, preparation.job)
    if spec.monitoring.service_monitor and capabilities.service_monitors:
        children.append(build_servicemonitor(spec, ref))
    if spec.monitoring.prometheus_rule and capabilities.prometheus_rules:
        children.append(build_prometheusrule(spec, ref))
    return Plan(
        children=tuple(children),
        metrics_source=source,
        preparation=preparation,
        problems=problems,
        preparation_policy=preparation_policy,
    )


def owned(children: tuple[dict[str, Any], ...], owner: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The children with an ownerReference to the CR (and its labels), ready to apply."""
    adopted = copy.deepcopy(list(children))
    for child in adopted:
        kopf.adopt(child, owner=owner)
    return adopted
