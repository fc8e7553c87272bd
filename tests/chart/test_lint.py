"""`helm lint --strict` is clean: warnings count as failures, as in the chart's CI."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.chart.rendering import CHART, CI_VALUES, NAMESPACE, helm


def test_helm_lint_strict_passes_with_the_default_values() -> None:
    output = helm("lint", "--strict", CHART, "--namespace", NAMESPACE)
    assert "0 chart(s) failed" in output
    assert "[WARNING]" not in output
    assert "[ERROR]" not in output


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_helm_lint_strict_passes_with_each_ci_values_file(values_file: Path) -> None:
    output = helm("lint", "--strict", CHART, "--namespace", NAMESPACE, "--values", values_file)
    assert "0 chart(s) failed" in output
    assert "[WARNING]" not in output


def test_there_is_a_ci_values_file_for_each_optional_branch() -> None:
    features = {path.stem.split("-", 1)[1].removesuffix("-values") for path in CI_VALUES}
    assert {"cluster-wide", "namespaced", "ha-peering", "monitoring"} <= features


def test_the_packaged_chart_carries_the_crds_the_test_script_and_the_docs(tmp_path: Path) -> None:
    helm("package", CHART, "--destination", tmp_path)
    archive = tmp_path / "kube-reranker-0.1.0.tgz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    for path in (
        "crds/rerankerdeployments.kube-reranker.io.yaml",
        "crds/kopf-peerings.yaml",
        "files/check_endpoint.py",
        "docs/prometheus-adapter-values.yaml",
        "values.schema.json",
        "README.md",
    ):
        assert f"kube-reranker/{path}" in names
    assert not any("__pycache__" in name or "/ci/" in name for name in names)
