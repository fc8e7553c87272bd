"""checkov, the scanner platform teams run in admission and CI, over everything we render: the chart
under every values file and the operator's objects for every example. Each exception is written
down with its reason; any other failed check fails the suite, and an exception nothing needs any
more fails it too."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from reranker_operator import api
from reranker_operator.config import OperatorConfig
from reranker_operator.plan import Capabilities, owned, plan_children
from reranker_operator.resources.common import ChildRef

from tests.chart.rendering import CI_VALUES, REPO, render_text

CHECKOV: Final = REPO / "build" / "tools" / "checkov" / "bin" / "checkov"
EXAMPLES: Final = tuple(sorted((REPO / "examples").glob("*.yaml")))
EXAMPLE_NAMESPACE: Final = "search"
HARDENED: Final = next(path for path in CI_VALUES if "hardened" in path.name)
OPERATOR: Final = r"Deployment\.reranker-system\.rr-kube-reranker"
TEST_POD: Final = r"Pod\.[a-z-]+\.rr-kube-reranker-test"


@dataclass(frozen=True)
class Exception_:
    """A check some objects fail on purpose: which, and why, in one line."""

    check: str
    objects: str  # a regex over checkov's "Kind.namespace.name" of the object
    reason: str


EXCEPTIONS: Final = (
    Exception_(
        "CKV_K8S_15",
        r".*",
        "imagePullPolicy IfNotPresent: images are pinned by version tag or digest, and Always would add a "
        "registry round-trip to every pod start and fail starts while the registry is down",
    ),
    Exception_(
        "CKV_K8S_43",
        r".*",
        "the defaults pin the chart's version tag; digests are one value away (06-hardened-values, whose "
        "objects pass this check: test_pinned_digests_pass_the_digest_check)",
    ),
    Exception_(
        "CKV_K8S_11",
        OPERATOR,
        "no CPU limit on the operator: throttling would stall its reconcile bursts; its request reserves it",
    ),
    Exception_(
        "CKV_K8S_38",
        OPERATOR,
        "the operator calls the API server with its ServiceAccount token; the server pods mount none",
    ),
    Exception_(
        "CKV_K8S_9", OPERATOR, "the operator serves no traffic to be ready for; /healthz is its liveness"
    ),
    Exception_("CKV_K8S_8", TEST_POD, "the helm test pod runs to completion: there is nothing to probe"),
    Exception_("CKV_K8S_9", TEST_POD, "the helm test pod runs to completion: there is nothing to probe"),
    Exception_(
        "CKV_K8S_35",
        r"(Deployment|Job)\.search\.(minilm-keda|rr-prepare-[0-9a-f]+)",
        "the KEDA example passes HF_TOKEN as an env var, which is how huggingface_hub reads it; a cluster "
        "admin can forbid Secret env (tenancy.allowSecretEnv=false)",
    ),
)


def operator_objects(example: Path) -> list[dict[str, Any]]:
    """What the operator applies for an example, in a cluster with the Prometheus Operator and KEDA."""
    cr = yaml.safe_load(example.read_text())
    cr["metadata"] |= {"namespace": EXAMPLE_NAMESPACE, "uid": str(uuid.uuid4())}
    ref = ChildRef(cr_name=cr["metadata"]["name"], namespace=EXAMPLE_NAMESPACE)
    config = OperatorConfig(prometheus_url="http://prometheus-operated.monitoring.svc:9090")
    plan = plan_children(api.parse_spec(cr["spec"]), ref, config, Capabilities(True, True, True))
    return owned((*plan.shared, *plan.children), cr)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    assert CHECKOV.exists(), "checkov is missing: run `bash scripts/install-tools.sh` (or `make tools`)"
    folder = tmp_path_factory.mktemp("rendered")
    (folder / "chart-defaults.yaml").write_text(render_text())
    for values in CI_VALUES:
        (folder / f"chart-{values.stem}.yaml").write_text(render_text(values))
    for example in EXAMPLES:
        (folder / f"operator-{example.stem}.yaml").write_text(yaml.safe_dump_all(operator_objects(example)))
    result = subprocess.run(
        [str(CHECKOV), "--directory", str(folder), "--framework", "kubernetes", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout)
    (report,) = report if isinstance(report, list) else [report]
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    return report


def object_of(check: dict[str, Any]) -> str:
    return ".".join(check["resource"].split(".")[:3])


def explained(check: dict[str, Any]) -> Exception_ | None:
    return next(
        (
            item
            for item in EXCEPTIONS
            if item.check == check["check_id"] and re.fullmatch(item.objects, object_of(check))
        ),
        None,
    )


def test_checkov_finds_nothing_but_the_documented_exceptions(scanned):
    unexplained = [
        f"{check['check_id']} {check['check_name']}: {object_of(check)} ({Path(check['file_path']).name})"
        for check in scanned["results"]["failed_checks"]
        if explained(check) is None
    ]
    assert unexplained == []
    assert scanned["summary"]["passed"] > 1000


def test_every_documented_exception_is_still_needed(scanned):
    used = {explained(check) for check in scanned["results"]["failed_checks"]}
    assert [item for item in EXCEPTIONS if item not in used] == []


def test_every_pod_has_a_networkpolicy(scanned):
    """Server pods, preparation Job pods, the operator and the helm test pod (CKV2_K8S_6)."""
    covered = {object_of(c) for c in scanned["results"]["passed_checks"] if c["check_id"] == "CKV2_K8S_6"}
    assert {"Pod.search.minilm", "Pod.search.bge-m3", "Pod.search.minilm-keda"} <= covered
    assert {"Pod.reranker-system.rr-kube-reranker", "Pod.reranker-system.rr-kube-reranker-test"} <= covered
    assert any(name.startswith("Pod.search.rr-prepare-") for name in covered)


def test_pinned_digests_pass_the_digest_check(scanned):
    from_hardened = [
        check
        for check in (*scanned["results"]["passed_checks"], *scanned["results"]["failed_checks"])
        if check["check_id"] == "CKV_K8S_43" and Path(check["file_path"]).stem == f"chart-{HARDENED.stem}"
    ]
    assert from_hardened
    assert all(check["check_result"]["result"] == "PASSED" for check in from_hardened)
