"""Every object the chart renders is valid Kubernetes for every version the chart supports.

Built-in kinds go through `kubernetes-validate --strict` (unknown fields rejected). Custom resources the
chart renders (the example RerankerDeployment, kopf peering objects) are validated against the CRDs the
chart itself ships, made strict the way kubectl's server-side field validation is. ServiceMonitor's
upstream schema is not available offline: its metadata is validated and its spec is checked by the
behaviour tests in test_templates.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from tests.chart.rendering import (
    CHART,
    CI_VALUES,
    HelmError,
    chart_crds,
    kn,
    render,
    supported_kube_versions,
    validate_custom_resource,
    validate_object_meta,
)

VALUES_FILES = [None, *CI_VALUES]
KUBE_VERSIONS = supported_kube_versions()
METADATA_ONLY = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def _values_id(values_file: Path | None) -> str:
    return "defaults" if values_file is None else values_file.stem


def _render(values_file: Path | None) -> list[dict]:
    return render(*(() if values_file is None else (values_file,)))


def _problems(obj: dict, kube_version: str) -> list[str]:
    """Validation errors of one object, as readable lines (empty when valid)."""
    group = obj["apiVersion"].rpartition("/")[0]
    crd = chart_crds().get((group, obj["kind"]))
    try:
        if crd is not None:
            validate_custom_resource(obj, crd, kube_version)
        elif (obj["apiVersion"], obj["kind"]) in METADATA_ONLY:
            validate_object_meta(obj, kube_version)
        else:
            kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{kn(obj)}: {exc.message}; if it is a custom resource, its CRD is missing from {CHART}/crds"]
    except jsonschema.ValidationError as exc:
        path = ".".join(map(str, exc.absolute_path))
        return [f"{kn(obj)} against {kube_version}: {path}: {exc.message}"]
    return []


def test_kubernetes_versions_from_the_chart_floor_to_the_newest_known_are_checked() -> None:
    assert KUBE_VERSIONS[0] == "1.29.0"
    assert len(KUBE_VERSIONS) >= 5, KUBE_VERSIONS


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values_file", VALUES_FILES, ids=_values_id)
def test_every_rendered_object_is_valid_for_the_kubernetes_version(
    values_file: Path | None, kube_version: str
) -> None:
    objects = _render(values_file)
    assert objects, "the chart rendered nothing"
    problems = [line for obj in objects for line in _problems(obj, kube_version)]
    assert problems == []


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=_values_id)
def test_rendering_with_the_oldest_supported_kubernetes_version_succeeds(values_file: Path | None) -> None:
    extra = ("--kube-version", KUBE_VERSIONS[0])
    assert render(*(() if values_file is None else (values_file,)), extra=extra)


def test_a_kubernetes_version_below_the_floor_is_refused_by_name() -> None:
    message = "requires kubeVersion: >=1.29.0-0 which is incompatible with Kubernetes v1.28.9"
    with pytest.raises(HelmError, match=re.escape(message)):
        render(extra=("--kube-version", "1.28.9"))


def test_an_invalid_object_is_reported_not_waved_through() -> None:
    """Guards the guard: a Deployment with a misspelt field must produce a problem line."""
    deployment = next(o for o in _render(None) if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    assert _problems(deployment, KUBE_VERSIONS[-1]) != []


@pytest.mark.parametrize("values_file", [f for f in CI_VALUES if "example" in f.read_text()], ids=_values_id)
def test_the_example_rerankerdeployment_passes_the_crds_defaults_schema_and_cel_rules(
    values_file: Path,
) -> None:
    """What the API server would do with the example: default it, validate it, evaluate the CEL rules."""
    from tests.operator.crd_schema import admit

    example = next(o for o in _render(values_file) if o["kind"] == "RerankerDeployment")
    crd = chart_crds()[("kube-reranker.io", "RerankerDeployment")]
    schema = next(v for v in crd["spec"]["versions"] if v["storage"])["schema"]["openAPIV3Schema"]
    _, errors = admit(schema, example)
    assert errors == []


def test_an_example_breaking_a_cel_rule_is_caught() -> None:
    """Guards the guard: min replicas above max must be refused by the CRD's CEL rule."""
    from tests.operator.crd_schema import admit

    example = next(o for o in _render(CI_VALUES[0]) if o["kind"] == "RerankerDeployment")
    example["spec"]["replicas"] = {"min": 5, "max": 2}
    crd = chart_crds()[("kube-reranker.io", "RerankerDeployment")]
    schema = next(v for v in crd["spec"]["versions"] if v["storage"])["schema"]["openAPIV3Schema"]
    _, errors = admit(schema, example)
    assert len(errors) == 1
    assert errors[0].startswith("spec.replicas: replicas.min must be less than or equal to replicas.max")
