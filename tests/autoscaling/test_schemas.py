"""The autoscaling objects are valid: the HPA by Kubernetes' own schemas, the CRD kinds by fixtures.

ScaledObject, ServiceMonitor and PrometheusRule are validated against small schema fixtures
(schemas/) written from the fields KEDA v2.15 and the Prometheus Operator v0.75 document, with
unknown fields rejected: a typo that their CRDs would prune silently fails here. The HPA, and
the HPA behavior KEDA copies into its own HPA, pass `kubernetes-validate --strict`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils
from packaging.version import Version
from referencing import Registry, Resource
from reranker_operator import upstream

from tests.autoscaling.rendering import ADAPTER_ONLY, EXAMPLES, children, cr, example

SCHEMAS = Path(__file__).parent / "schemas"
FIXTURES = {
    "ScaledObject": "scaledobject-keda-2.15.yaml",
    "ServiceMonitor": "servicemonitor-prometheus-operator-0.75.yaml",
    "PrometheusRule": "prometheusrule-prometheus-operator-0.75.yaml",
}
FLOOR = Version(upstream.KUBERNETES_VERSION)
VERSIONS = sorted((v for v in utils.all_versions() if Version(v) >= FLOOR), key=Version)
OLDEST_AND_NEWEST = [VERSIONS[0], VERSIONS[-1]]
# Autoscaling settings at their bounds, so every rendered number is checked, not only the defaults.
EDGE_AUTOSCALING = [
    {"sloHeadroomPercent": 10, "inFlightPerReplica": 1, "scaleDownStabilizationSeconds": 0},
    {"sloHeadroomPercent": 100, "inFlightPerReplica": 10_000, "scaleDownStabilizationSeconds": 3600},
]


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((SCHEMAS / name).read_text())


def validator(kind: str) -> jsonschema.Draft202012Validator:
    """A fixture, resolving its references to common.yaml by the $id both share a base with."""
    common = load("common.yaml")
    registry = Registry().with_resource(common["$id"], Resource.from_contents(common))
    return jsonschema.Draft202012Validator(load(FIXTURES[kind]), registry=registry)


def problems(kind: str, obj: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator(kind).iter_errors(obj)
    ]


def adapter_hpa(manifest: dict[str, Any]) -> dict[str, Any]:
    """The HPA of the prometheus-adapter path, whatever metrics source the manifest asks for."""
    manifest = copy.deepcopy(manifest)
    manifest["spec"].setdefault("autoscaling", {})["metricsSource"] = "prometheus-adapter"
    return children(manifest, ADAPTER_ONLY)["HorizontalPodAutoscaler"]


def rendered_specs() -> list[Any]:
    specs = [pytest.param(example(path), id=path.stem) for path in EXAMPLES]
    for index, autoscaling in enumerate(EDGE_AUTOSCALING):
        spec = {"model": {"id": "m"}, "replicas": {"min": 1, "max": 1000}, "autoscaling": autoscaling}
        specs.append(pytest.param(cr("edge", spec), id=f"edge-{index}"))
    return specs


@pytest.mark.parametrize("kind", sorted(FIXTURES))
@pytest.mark.parametrize("manifest", rendered_specs())
def test_the_rendered_object_has_only_fields_its_upstream_documents(manifest, kind):
    obj = children(manifest)[kind]
    assert problems(kind, obj) == []


@pytest.mark.parametrize(
    ("kind", "breakage", "complaint"),
    [
        ("ScaledObject", lambda o: o["spec"]["triggers"][0].update(metricType="value"), "is not one of"),
        (
            "ScaledObject",
            lambda o: o["spec"]["triggers"][0]["metadata"].update(threshold=0.4),
            "is not of type",
        ),
        ("ScaledObject", lambda o: o["spec"]["triggers"][0]["metadata"].update(treshold="1"), "Additional"),
        ("ServiceMonitor", lambda o: o["spec"]["endpoints"][0].update(honorlabels=True), "Additional"),
        (
            "ServiceMonitor",
            lambda o: o["spec"]["endpoints"][0].update(interval="15 seconds"),
            "does not match",
        ),
        (
            "PrometheusRule",
            lambda o: o["spec"]["groups"][0]["rules"][0].update(record="x"),
            "is not valid under any",
        ),
        (
            "PrometheusRule",
            lambda o: o["spec"]["groups"][0]["rules"][0].update({"for": "10min"}),
            "does not match",
        ),
    ],
)
def test_the_fixtures_reject_what_their_upstream_would_reject_or_drop(kind, breakage, complaint):
    obj = copy.deepcopy(children(example(EXAMPLES[0]))[kind])
    breakage(obj)
    assert any(complaint in problem for problem in problems(kind, obj)), problems(kind, obj)


@pytest.mark.parametrize("version", OLDEST_AND_NEWEST)
@pytest.mark.parametrize("manifest", rendered_specs())
def test_the_rendered_hpa_is_valid_kubernetes(manifest, version):
    hpa = adapter_hpa(manifest)
    assert kubernetes_validate.validate(hpa, version, strict=True) == version.rsplit(".", 1)[0]


@pytest.mark.parametrize("version", OLDEST_AND_NEWEST)
@pytest.mark.parametrize("manifest", rendered_specs())
def test_the_behavior_keda_copies_into_its_hpa_is_valid_kubernetes(manifest, version):
    scaled_object = children(manifest)["ScaledObject"]
    hpa = adapter_hpa(manifest)
    hpa["spec"]["behavior"] = scaled_object["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert kubernetes_validate.validate(hpa, version, strict=True) == version.rsplit(".", 1)[0]


@pytest.mark.parametrize("manifest", rendered_specs())
def test_keda_and_the_hpa_scale_between_the_same_bounds_with_the_same_behavior(manifest):
    rendered = children(manifest)
    hpa = adapter_hpa(manifest)["spec"]
    keda = rendered["ScaledObject"]["spec"]
    assert (keda["minReplicaCount"], keda["maxReplicaCount"]) == (hpa["minReplicas"], hpa["maxReplicas"])
    assert keda["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["behavior"]
    assert "HorizontalPodAutoscaler" not in rendered  # KEDA owns the HPA on its path
