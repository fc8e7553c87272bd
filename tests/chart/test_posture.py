"""The chart's security posture: digests, the operator's NetworkPolicy, tenancy settings, the admission
policy (its CEL run with cel-python against the operator's own checks) and `helm test` by default."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import celpy
import kubernetes_validate
import pytest
from packaging.version import Version
from reranker_operator import api, naming, tenancy
from reranker_operator.config import OperatorConfig

from tests.chart.rendering import (
    CHART,
    CI_VALUES,
    RELEASE,
    HelmError,
    one,
    render,
    supported_kube_versions,
)
from tests.chart.test_check_endpoint import load_script

HARDENED = next(path for path in CI_VALUES if "hardened" in path.name)
DIGEST = "sha256:" + "5" * 64
RESTRICTIVE = (
    "admissionPolicy.enabled=true",
    "tenancy.allowedImagePrefixes={registry.example.com/ml/,quay.io/team}",
    "tenancy.allowServiceAccountName=false",
    "tenancy.allowSecretEnv=false",
)
SCRIPT = CHART / "files" / "check_endpoint.py"
OPERATOR = f"{RELEASE}-kube-reranker"


def operator_env(objects: list[dict]) -> dict[str, str]:
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def test_every_image_can_be_pinned_by_digest():
    objects = render(HARDENED)
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith("@sha256:" + "1" * 64)
    env = operator_env(objects)
    for name, digit in (("SERVER_IMAGE", "2"), ("SERVER_GPU_IMAGE", "3"), ("EXPORT_IMAGE", "4")):
        image = env[f"RERANKER_OPERATOR_{name}"]
        assert image.endswith(":0.1.0@sha256:" + digit * 64), image
        OperatorConfig.from_env({f"RERANKER_OPERATOR_{name}": image})  # the operator accepts what it gets


def test_a_tag_may_carry_its_digest():
    objects = render(settings=(f"server.image.tag=0.1.0@{DIGEST}",))
    assert operator_env(objects)["RERANKER_OPERATOR_SERVER_IMAGE"].endswith(f":0.1.0@{DIGEST}")


def test_a_malformed_digest_is_refused_naming_the_value():
    with pytest.raises(HelmError, match="at '/server/exportImage/digest'"):
        render(settings=("server.exportImage.digest=sha256:abc",))


def test_the_operator_takes_no_connections_but_its_metrics_scrape():
    policy = one(render(), "NetworkPolicy", OPERATOR)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == []
    monitored = one(render(settings=("serviceMonitor.enabled=true",)), "NetworkPolicy", OPERATOR)
    (rule,) = monitored["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": "metrics"}]


def test_tenancy_values_reach_the_operator_as_its_guardrails():
    env = operator_env(render(HARDENED))
    config = OperatorConfig.from_env(env)
    assert config.tenancy == tenancy.Tenancy(("registry.example.com/ml/",), False, False)


def test_by_default_the_operator_restricts_nothing():
    assert OperatorConfig.from_env(operator_env(render())).tenancy == tenancy.Tenancy()


def test_the_admission_policy_is_opt_in():
    assert not [obj for obj in render() if obj["kind"].startswith("ValidatingAdmissionPolicy")]


def test_the_admission_policy_needs_kubernetes_1_30_and_says_so():
    with pytest.raises(HelmError, match=r"admissionPolicy.enabled needs Kubernetes >= 1.30"):
        render(settings=RESTRICTIVE, extra=("--kube-version", "1.29.0"))


@pytest.mark.parametrize(
    "kube_version", [v for v in supported_kube_versions() if Version(v) >= Version("1.30")]
)
def test_the_admission_policy_is_valid_kubernetes(kube_version):
    objects = render(settings=RESTRICTIVE, extra=("--kube-version", kube_version))
    for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        kubernetes_validate.validate(one(objects, kind), kube_version, strict=True)


def admission_verdict(
    policy: dict[str, Any], cr: dict[str, Any], *, old: dict[str, Any] | None = None
) -> list[str]:
    """What the API server answers a CREATE of `cr` (an UPDATE from `old`): every failed validation's
    message; none when a matchCondition leaves the request out."""
    environment = celpy.Environment()

    def evaluate(expression: str, activation: dict[str, Any]) -> Any:
        return environment.program(environment.compile(expression)).evaluate(activation)

    activation: dict[str, Any] = {
        "object": celpy.json_to_cel(cr),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel({"operation": "CREATE" if old is None else "UPDATE"}),
    }
    if not all(bool(evaluate(item["expression"], activation)) for item in policy["spec"]["matchConditions"]):
        return []
    variables: dict[str, Any] = {}
    for variable in policy["spec"]["variables"]:
        variables[variable["name"]] = evaluate(variable["expression"], {**activation, "variables": variables})
    activation["variables"] = celpy.celtypes.MapType(
        {celpy.celtypes.StringType(name): value for name, value in variables.items()}
    )
    messages = []
    for validation in policy["spec"]["validations"]:
        if not bool(evaluate(validation["expression"], activation)):
            if "messageExpression" in validation:
                messages.append(str(evaluate(validation["messageExpression"], activation)))
            else:
                messages.append(validation["message"])
    return messages


def cr(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {"name": "minilm", "namespace": "search"},
        "spec": {"model": {"id": "cross-encoder/ms-marco-MiniLM-L-6-v2"}, **spec},
    }


SECRET_ENV = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]
CASES = {
    "plain": cr(),
    "allowed-image": cr(image=f"registry.example.com/ml/reranker-server@{DIGEST}"),
    "allowed-segment": cr(image="quay.io/team/reranker:1"),
    "foreign-image": cr(image="docker.io/someone/reranker:1"),
    "lookalike-prefix": cr(image="quay.io/team-evil/reranker:1"),
    "service-account": cr(podTemplate={"serviceAccountName": "robot"}),
    "secret-env": cr(env=SECRET_ENV),
    "field-env": cr(env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]),
    "everything": cr(image="docker.io/x:1", podTemplate={"serviceAccountName": "robot"}, env=SECRET_ENV),
    "keys-for-the-operators-image": cr(auth={"secretName": "search-keys"}),
    "keys-for-an-image-of-ones-own": cr(image="quay.io/team/reranker:1", auth={"secretName": "search-keys"}),
}


@pytest.mark.parametrize("name", CASES)
def test_the_admission_policy_and_the_operator_refuse_the_same_specs_for_the_same_rules(name):
    policy = one(render(settings=RESTRICTIVE), "ValidatingAdmissionPolicy")
    config = OperatorConfig.from_env(operator_env(render(settings=RESTRICTIVE)))
    manifest = CASES[name]
    at_admission = admission_verdict(policy, manifest)
    in_operator = tenancy.violations(api.parse_spec(manifest["spec"]), config.tenancy)
    assert len(at_admission) == len(in_operator)
    for admitted, checked in zip(sorted(at_admission), sorted(in_operator), strict=True):
        rule = checked.split(" (", 1)[0]
        assert admitted.startswith(rule), (admitted, checked)
        assert admitted.endswith(checked.rsplit("): ", 1)[1])


def test_the_admission_policy_lets_finalizer_updates_and_deletions_of_older_objects_through():
    policy = one(render(settings=RESTRICTIVE), "ValidatingAdmissionPolicy")
    forbidden = CASES["foreign-image"]
    assert admission_verdict(policy, forbidden), "a creation is refused"
    finalized = {
        **forbidden,
        "metadata": {**forbidden["metadata"], "finalizers": ["kopf.zalando.org/KopfFinalizerMarker"]},
    }
    assert admission_verdict(policy, finalized, old=forbidden) == []
    deleting = {
        **finalized,
        "metadata": {**finalized["metadata"], "deletionTimestamp": "2026-12-02T00:00:00Z"},
    }
    assert admission_verdict(policy, deleting, old=finalized) == []
    changed = {**forbidden, "spec": {**forbidden["spec"], "maxCandidates": 50}}
    assert admission_verdict(policy, changed, old=forbidden), "a spec change is checked again"


def test_an_admission_policy_without_a_rule_is_refused_with_words():
    with pytest.raises(HelmError, match=r"admissionPolicy\.enabled needs at least one tenancy rule"):
        render(settings=("admissionPolicy.enabled=true",))


def test_the_admission_policy_binding_follows_the_watched_namespaces():
    binding = one(
        render(settings=(*RESTRICTIVE, "watchNamespaces={search}")), "ValidatingAdmissionPolicyBinding"
    )
    assert binding["spec"]["validationActions"] == ["Deny"]
    (expression,) = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert expression["values"] == ["search"]


def test_helm_test_under_default_values_passes_saying_there_is_nothing_to_test():
    pod = one(render(), "Pod")
    (container,) = pod["spec"]["containers"]
    result = subprocess.run(
        [sys.executable, "-B", str(SCRIPT), *container["args"]], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("SKIPPED no RerankerDeployment to test")
    assert "example.enabled=true" in result.stdout


def test_helm_test_runs_beside_its_target_and_sends_its_api_key():
    objects = render(HARDENED)
    pod = one(objects, "Pod")
    (container,) = pod["spec"]["containers"]
    assert pod["metadata"]["namespace"] == one(objects, naming.KIND)["metadata"]["namespace"]
    assert "--api-key-file=/api-keys/api-keys" in container["args"]
    assert {"name": "api-keys", "secret": {"secretName": "reranker-api-keys", "defaultMode": 0o440}} in pod[
        "spec"
    ]["volumes"]
    policy = one(objects, "NetworkPolicy", f"{OPERATOR}-test")
    (target,) = policy["spec"]["egress"][1]["to"]
    assert target["podSelector"]["matchLabels"] == naming.selector_labels(
        one(objects, naming.KIND)["metadata"]["name"]
    )


def test_the_check_sends_the_first_key_of_the_file(tmp_path):
    keys = tmp_path / "api-keys"
    keys.write_text("# rotated monthly\nrk-first\nrk-second\n")
    assert load_script().first_key(str(keys)) == "rk-first"


def test_a_digest_in_both_the_tag_and_digest_is_refused_naming_the_image():
    with pytest.raises(HelmError, match="set its digest either in the tag"):
        render(settings=(f"operator.image.tag=0.1.0@{DIGEST}", f"operator.image.digest={DIGEST}"))


def test_deny_and_warn_together_are_refused_as_the_api_server_would():
    with pytest.raises(HelmError, match="validationActions"):
        render(settings=(*RESTRICTIVE, "admissionPolicy.validationActions={Deny,Warn}"))
