"""Every object the operator renders for every example is valid Kubernetes, on every supported version.

`kubernetes-validate --strict` rejects unknown fields as well as wrong types, so a typo in a
builder fails here rather than being silently dropped by an API server. The floor is 1.29
(the oldest version the CRD's upstream schemas follow); the ceiling is the newest version
kubernetes-validate ships.
"""

from __future__ import annotations

import uuid
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate import utils
from packaging.version import Version
from reranker_operator import api, upstream
from reranker_operator.config import OperatorConfig
from reranker_operator.plan import Capabilities, owned, plan_children
from reranker_operator.resources.common import ChildRef

from tests.operator.conftest import EXAMPLES, load_yaml

FLOOR = Version(upstream.KUBERNETES_VERSION)
VERSIONS = sorted({v for v in utils.all_versions() if Version(v) >= FLOOR}, key=Version)
CLUSTERS = {
    "bare": Capabilities(),
    "prometheus-operator-and-keda": Capabilities(
        service_monitors=True, prometheus_rules=True, scaled_objects=True
    ),
}
CORE_KINDS = {
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Job",
    "PersistentVolumeClaim",
}
SETTINGS = OperatorConfig(prometheus_url="http://prometheus-operated.monitoring.svc:9090")


def rendered(example: dict[str, Any], capabilities: Capabilities) -> list[dict[str, Any]]:
    """The children (and the shared preparation Job and claim) as the operator applies them, owned."""
    cr = {**example, "metadata": {"namespace": "search", **example["metadata"], "uid": str(uuid.uuid4())}}
    ref = ChildRef(cr_name=cr["metadata"]["name"], namespace=cr["metadata"]["namespace"])
    plan = plan_children(api.parse_spec(cr["spec"]), ref, SETTINGS, capabilities)
    return owned((*plan.shared, *plan.children), cr)


CASES = [
    pytest.param(path, cluster, obj["kind"], id=f"{path.stem}-{cluster}-{obj['kind']}")
    for path in EXAMPLES
    for cluster, capabilities in CLUSTERS.items()
    for obj in rendered(load_yaml(path), capabilities)
    if obj["kind"] in CORE_KINDS
]


def test_validation_covers_kubernetes_1_29_through_the_newest_schemas():
    assert VERSIONS[0] == "1.29.0"
    assert Version(VERSIONS[-1]) >= Version("1.37.0")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("path", "cluster", "kind"), CASES)
def test_rendered_object_is_valid_kubernetes(path, cluster, kind, version):
    (obj,) = [obj for obj in rendered(load_yaml(path), CLUSTERS[cluster]) if obj["kind"] == kind]
    assert kubernetes_validate.validate(obj, version, strict=True) == version.rsplit(".", 1)[0]


def test_every_example_renders_each_core_kind_somewhere():
    kinds = {case.values[2] for case in CASES}
    assert kinds == CORE_KINDS
