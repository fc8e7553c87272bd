"""The chart's crds/: the generated RerankerDeployment CRD byte for byte, plus kopf's peering CRDs.

Helm applies crds/ as plain files (never templated) on first install only, so what is in there must be
exactly what `make crds` generates and valid for every supported Kubernetes version.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
from kopf._cogs.structs import references as kopf_references
from reranker_operator import kinds

from tests.chart.rendering import CHART, REPO, crd_documents, supported_kube_versions

GENERATED = sorted((REPO / "crds").glob("*.yaml"))
CHART_CRDS = sorted((CHART / "crds").glob("*.yaml"))
PEERING_FILE = CHART / "crds" / "kopf-peerings.yaml"


def test_the_generated_crd_exists() -> None:
    assert [p.name for p in GENERATED] == ["rerankerdeployments.kube-reranker.io.yaml"], (
        "crds/ must hold the generated CRD: run `make crds`"
    )


@pytest.mark.parametrize("generated", GENERATED, ids=lambda p: p.name)
def test_chart_crd_is_identical_to_the_generated_crd(generated: Path) -> None:
    in_chart = CHART / "crds" / generated.name
    assert in_chart.is_file(), f"{in_chart} is missing: run `make crds`"
    assert in_chart.read_bytes() == generated.read_bytes(), (
        f"{in_chart} differs from {generated}: run `make crds`"
    )


def test_chart_crds_hold_only_the_generated_crds_and_kopf_peering() -> None:
    assert {p.name for p in CHART_CRDS} == {p.name for p in GENERATED} | {PEERING_FILE.name}


@pytest.mark.parametrize("path", CHART_CRDS, ids=lambda p: p.name)
def test_chart_crds_are_plain_yaml_not_templates(path: Path) -> None:
    assert "{{" not in path.read_text()


@pytest.mark.parametrize("kube_version", supported_kube_versions())
@pytest.mark.parametrize("path", CHART_CRDS, ids=lambda p: p.name)
def test_every_chart_crd_is_a_valid_crd_for_the_kubernetes_version(path: Path, kube_version: str) -> None:
    for crd in crd_documents(path):
        assert crd["kind"] == "CustomResourceDefinition"
        kubernetes_validate.validate(crd, kube_version, strict=True)


def peering_crds() -> dict[str, dict]:
    return {crd["spec"]["names"]["plural"]: crd for crd in crd_documents(PEERING_FILE)}


@pytest.mark.parametrize(
    ("selector", "resource"),
    [
        (kopf_references.CLUSTER_PEERINGS_K, kinds.CLUSTER_KOPF_PEERING),
        (kopf_references.NAMESPACED_PEERINGS_K, kinds.KOPF_PEERING),
    ],
    ids=["cluster", "namespaced"],
)
def test_peering_crds_serve_what_kopf_and_the_operator_use(selector, resource) -> None:
    crd = peering_crds()[selector.any_name]
    assert crd["metadata"]["name"] == f"{selector.any_name}.{selector.group}"
    assert crd["spec"]["group"] == selector.group == resource.group
    assert selector.version == resource.version
    assert [v["name"] for v in crd["spec"]["versions"] if v["served"]] == [selector.version]
    assert crd["spec"]["names"]["kind"] == resource.kind
    assert crd["spec"]["scope"] == ("Namespaced" if resource.namespaced else "Cluster")


def test_peering_status_keeps_the_keep_alives_kopf_writes() -> None:
    for crd in peering_crds().values():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True
