"""Production posture: network isolation, API keys, spread, rollouts without a spare GPU, guardrails."""

from __future__ import annotations

import pytest
from reranker_operator import api, naming, tenancy
from reranker_operator.config import ConfigError, OperatorConfig
from reranker_operator.plan import Capabilities, Plan, plan_children
from reranker_operator.resources.common import ChildRef

from tests.operator.conftest import children_of, condition, eventually
from tests.operator.test_loop import change_spec, create

REF = ChildRef(cr_name="minilm", namespace="search")
DIGEST = "sha256:" + "ab" * 32


def spec(**fields) -> api.RerankerDeploymentSpec:
    return api.parse_spec({"model": {"id": "cross-encoder/ms-marco-MiniLM-L-6-v2"}, **fields})


def plan(s: api.RerankerDeploymentSpec, config: OperatorConfig | None = None) -> Plan:
    return plan_children(s, REF, config or OperatorConfig(), Capabilities())


def child(p: Plan, kind: str) -> dict:
    (found,) = [item for item in p.children if item["kind"] == kind]
    return found


def pod(p: Plan) -> dict:
    return child(p, "Deployment")["spec"]["template"]["spec"]


def test_by_default_only_this_namespace_calls_the_server_and_monitoring_scrapes_it():
    policy = child(plan(spec()), "NetworkPolicy")["spec"]
    assert policy["podSelector"] == {"matchLabels": naming.selector_labels("minilm")}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    http, metrics = policy["ingress"]
    assert http == {"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": "http"}]}
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert metrics["ports"] == [{"protocol": "TCP", "port": "metrics"}]


def test_pods_that_prepare_their_own_model_may_download_it_and_resolve_names():
    egress = child(plan(spec()), "NetworkPolicy")["spec"]["egress"]
    assert {"protocol": "UDP", "port": 53} in egress[0]["ports"]
    assert egress[1] == {"ports": [{"protocol": "TCP", "port": 443}]}


def test_with_a_shared_cache_the_server_only_resolves_names_and_the_job_downloads():
    p = plan(spec(model={"id": "BAAI/bge-reranker-v2-m3", "cache": {"storageClassName": "rwx"}}))
    server_egress = child(p, "NetworkPolicy")["spec"]["egress"]
    assert server_egress == [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]
    job_policy = p.preparation_policy
    assert job_policy is not None
    assert job_policy in p.shared
    assert (
        job_policy["spec"]["podSelector"]["matchLabels"]
        == p.preparation.job["spec"]["template"]["metadata"]["labels"]
    )
    assert job_policy["spec"].get("ingress", []) == []
    assert "Ingress" in job_policy["spec"]["policyTypes"], "no rule: no connection in"
    assert {"ports": [{"protocol": "TCP", "port": 443}]} in job_policy["spec"]["egress"]
    assert p.shared.index(job_policy) < p.shared.index(p.preparation.job), "isolated before its pod starts"


def test_named_callers_and_a_mirror_port_are_rendered_as_given():
    s = spec(
        networkPolicy={
            "allowFrom": [
                {
                    "namespaceSelector": {"matchLabels": {"team": "search"}},
                    "podSelector": {"matchLabels": {"app": "rag"}},
                },
                {
                    "namespaceSelector": {
                        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]
                    }
                },
            ],
            "preparationEgressPorts": [8443],
        }
    )
    policy = child(plan(s), "NetworkPolicy")["spec"]
    assert policy["ingress"][0]["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"team": "search"}},
            "podSelector": {"matchLabels": {"app": "rag"}},
        },
        {"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}},
    ]
    assert policy["egress"][1] == {"ports": [{"protocol": "TCP", "port": 8443}]}


def test_no_metrics_peers_means_nobody_scrapes_rather_than_everybody():
    policy = child(plan(spec(networkPolicy={"metricsFrom": []})), "NetworkPolicy")["spec"]
    assert [rule["ports"][0]["port"] for rule in policy["ingress"]] == ["http"]


def test_network_policies_can_be_turned_off():
    p = plan(spec(networkPolicy={"enabled": False}, model={"id": "m", "cache": {"claimName": "models"}}))
    assert "NetworkPolicy" not in {item["kind"] for item in p.children}
    assert p.preparation_policy is None


def test_an_invalid_label_key_is_refused_naming_the_key():
    with pytest.raises(api.InvalidSpecError, match=r"not a valid label key .*'team name'"):
        spec(networkPolicy={"allowFrom": [{"namespaceSelector": {"matchLabels": {"team name": "x"}}}]})


def test_an_auth_secret_is_mounted_read_only_and_named_to_the_server():
    p = plan(spec(auth={"secretName": "search-keys", "key": "keys.txt"}))
    spec_ = pod(p)
    (container,) = spec_["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["RERANKER_API_KEYS_FILE"] == "/etc/kube-reranker/api-keys/keys.txt"
    assert {"name": "api-keys", "mountPath": "/etc/kube-reranker/api-keys", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {"name": "api-keys", "secret": {"secretName": "search-keys", "defaultMode": 0o440}} in spec_[
        "volumes"
    ]


def test_without_an_auth_secret_nothing_about_keys_is_rendered():
    (container,) = pod(plan(spec()))["containers"]
    assert "RERANKER_API_KEYS_FILE" not in {item["name"] for item in container["env"]}


def test_replicas_spread_over_zones_then_nodes_without_blocking_scheduling():
    constraints = pod(plan(spec(replicas={"min": 2, "max": 6})))["topologySpreadConstraints"]
    assert [item["topologyKey"] for item in constraints] == [
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    ]
    for item in constraints:
        assert item["whenUnsatisfiable"] == "ScheduleAnyway"
        assert item["labelSelector"] == {"matchLabels": naming.selector_labels("minilm")}
        assert item["matchLabelKeys"] == ["pod-template-hash"]


def test_a_single_replica_has_nothing_to_spread():
    assert "topologySpreadConstraints" not in pod(plan(spec(replicas={"min": 1, "max": 1})))


@pytest.mark.parametrize(
    "given", [[], [{"maxSkew": 2, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule"}]]
)
def test_the_pod_template_overrides_the_spread(given):
    rendered = pod(plan(spec(podTemplate={"topologySpreadConstraints": given})))
    assert rendered.get("topologySpreadConstraints", []) == given


ZEN3_POOL = {"nodeSelector": {"pool": "cpu-avx2"}}
TAINTED = [{"key": "dedicated", "operator": "Equal", "value": "reranker", "effect": "NoSchedule"}]
NODE_AFFINITY = {
    "requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {
                "matchExpressions": [
                    {"key": "feature.node.kubernetes.io/cpu-cpuid.AVX512VNNI", "operator": "Exists"}
                ]
            }
        ]
    }
}
POD_ANTI_AFFINITY = {
    "preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {}}}
    ]
}


def job_pod(p: Plan) -> dict:
    return p.preparation.job["spec"]["template"]["spec"]


def test_a_cpu_preparation_runs_on_the_nodes_that_serve_it_since_int8_weights_follow_the_cpu():
    template = {
        **ZEN3_POOL,
        "tolerations": TAINTED,
        "affinity": {"nodeAffinity": NODE_AFFINITY, "podAntiAffinity": POD_ANTI_AFFINITY},
    }
    p = plan(
        spec(
            model={"id": "BAAI/bge-reranker-v2-m3", "cache": {"storageClassName": "rwx"}},
            podTemplate=template,
        )
    )
    rendered = job_pod(p)
    assert rendered["nodeSelector"] == pod(p)["nodeSelector"] == {"pool": "cpu-avx2"}
    assert rendered["tolerations"] == TAINTED
    assert rendered["affinity"] == {"nodeAffinity": NODE_AFFINITY}, (
        "the serving pods' peers are not the Job's"
    )


def test_a_gpu_preparation_keeps_off_the_gpu_pool():
    s = spec(
        backend="gpu",
        model={"id": "BAAI/bge-reranker-v2-m3", "quantization": "fp16", "cache": {"storageClassName": "rwx"}},
        podTemplate=ZEN3_POOL | {"tolerations": TAINTED},
    )
    rendered = job_pod(plan(s))
    assert "nodeSelector" not in rendered
    assert "tolerations" not in rendered


def test_the_replace_rollout_needs_no_spare_gpu_and_the_budget_keeps_the_rest():
    s = spec(backend="gpu", replicas={"min": 3, "max": 3}, rollout={"strategy": "replace"})
    p = plan(s)
    assert child(p, "Deployment")["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    assert child(p, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_the_default_rollout_surges_one_warm_pod_before_an_old_one_leaves():
    strategy = child(plan(spec()), "Deployment")["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


@pytest.mark.parametrize(
    "image",
    [
        f"registry.example.com/ml/reranker-server:0.1.0@{DIGEST}",
        f"registry.example.com/ml/reranker-server@{DIGEST}",
        "localhost:5000/reranker-server:0.1.0",
    ],
)
def test_operator_images_may_be_pinned_by_digest(image):
    config = OperatorConfig.from_env({"RERANKER_OPERATOR_SERVER_IMAGE": image})
    (container,) = pod(plan(spec(), config))["containers"]
    assert container["image"] == image


def test_a_malformed_digest_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match=r"RERANKER_OPERATOR_EXPORT_IMAGE: .*not an image reference"):
        OperatorConfig.from_env({"RERANKER_OPERATOR_EXPORT_IMAGE": "kube-reranker/export@sha256:abc"})


RESTRICTED = tenancy.Tenancy(
    allowed_image_prefixes=("registry.example.com/ml/",), allow_service_account=False, allow_secret_env=False
)


def test_an_unrestricted_operator_accepts_any_image_account_and_secret():
    s = spec(
        image="docker.io/someone/server:1",
        podTemplate={"serviceAccountName": "robot"},
        env=[{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}],
    )
    assert tenancy.violations(s, tenancy.Tenancy()) == []


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        (
            {"image": "docker.io/someone/server:1"},
            "spec.image docker.io/someone/server:1 is not under an allowed",
        ),
        ({"image": "registry.example.com/ml-evil/server:1"}, "is not under an allowed prefix"),
        (
            {"podTemplate": {"serviceAccountName": "robot"}},
            "spec.podTemplate.serviceAccountName may not be set",
        ),
        (
            {"env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]},
            "spec.env may not read Secrets in this cluster (HF_TOKEN",
        ),
    ],
)
def test_a_restricted_operator_names_the_rule_a_spec_breaks(fields, rule):
    (violation,) = tenancy.violations(spec(**fields), RESTRICTED)
    assert rule in violation
    assert "RERANKER_OPERATOR_" in violation


def test_api_keys_for_an_image_of_ones_own_count_as_reading_a_secret():
    s = spec(image="registry.example.com/ml/custom:1", auth={"secretName": "search-keys"})
    (violation,) = tenancy.violations(s, RESTRICTED)
    assert "spec.auth.secretName with a spec.image of your own may not be used" in violation
    assert tenancy.violations(spec(auth={"secretName": "search-keys"}), RESTRICTED) == []


def test_allowed_images_and_plain_env_pass_the_guardrails():
    s = spec(
        image=f"registry.example.com/ml/reranker-server@{DIGEST}",
        env=[
            {"name": "LOG", "value": "1"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
    )
    assert tenancy.violations(s, RESTRICTED) == []


@pytest.mark.parametrize(
    ("prefix", "image", "allowed"),
    [
        ("registry.example.com/ml", "registry.example.com/ml/server:1", True),
        ("registry.example.com/ml", "registry.example.com/ml-evil/server:1", False),
        ("registry.example.com/ml/server", f"registry.example.com/ml/server@{DIGEST}", True),
        ("registry.example.com/ml/", "registry.example.com/ml/server:1", True),
    ],
)
def test_an_image_prefix_ends_at_a_path_segment(prefix, image, allowed):
    assert tenancy.image_allowed(image, [prefix]) is allowed


def test_guardrail_switches_accept_only_clear_words():
    assert (
        OperatorConfig.from_env({"RERANKER_OPERATOR_ALLOW_SECRET_ENV": "false"}).tenancy.allow_secret_env
        is False
    )
    with pytest.raises(ConfigError, match="RERANKER_OPERATOR_ALLOW_SERVICE_ACCOUNT: expected true or false"):
        OperatorConfig.from_env({"RERANKER_OPERATOR_ALLOW_SERVICE_ACCOUNT": "maybe"})


@pytest.mark.looptime
@pytest.mark.timeout(120)
async def test_a_spec_that_breaks_a_guardrail_is_degraded_and_nothing_is_applied(
    cluster, running_operator, make_cr, monkeypatch
):
    monkeypatch.setenv("RERANKER_OPERATOR_ALLOWED_IMAGE_PREFIXES", "registry.example.com/ml/")
    monkeypatch.setenv("RERANKER_OPERATOR_ALLOW_SERVICE_ACCOUNT", "false")
    forbidden = {
        "model": {"id": "org/model"},
        "image": "docker.io/someone/server:1",
        "podTemplate": {"serviceAccountName": "robot"},
    }
    async with running_operator():
        await create(cluster, make_cr("forbidden", forbidden))
        degraded = await eventually(
            lambda: condition(cluster, "forbidden", "Degraded").get("status") == "True"
        )
    assert degraded
    verdict = condition(cluster, "forbidden", "Degraded")
    assert verdict["reason"] == "PolicyViolation"
    assert "spec.image docker.io/someone/server:1 is not under an allowed prefix" in verdict["message"]
    assert "spec.podTemplate.serviceAccountName may not be set" in verdict["message"]
    assert children_of(cluster, "forbidden") == {}


@pytest.mark.looptime
@pytest.mark.timeout(120)
async def test_a_changed_download_port_reaches_the_shared_preparation_policy(
    cluster, running_operator, make_cr
):
    spec_ = {"model": {"id": "BAAI/bge-reranker-v2-m3", "cache": {"claimName": "models"}}}

    def job_policy():
        return next(
            (
                obj.raw
                for (resource, _, name), obj in cluster.objects.items()
                if resource.plural == "networkpolicies" and name.startswith("rr-prepare-") and not obj.deleted
            ),
            None,
        )

    async with running_operator():
        await create(cluster, make_cr("bge", spec_))
        created = await eventually(job_policy)
        assert {"ports": [{"protocol": "TCP", "port": 443}]} in created["spec"]["egress"]
        await change_spec(cluster, "bge", {"networkPolicy": {"preparationEgressPorts": [8443]}}, 2)
        updated = await eventually(
            lambda: {"ports": [{"protocol": "TCP", "port": 8443}]} in (job_policy() or {})["spec"]["egress"]
        )
    assert updated
    assert len(job_policy()["metadata"]["ownerReferences"]) == 1
