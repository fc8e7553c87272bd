"""What each template does, one behaviour per test, asserted on the objects `helm template` renders."""

from __future__ import annotations

import hashlib
import re

import pytest
import yaml

from tests.chart.rendering import (
    CHART,
    CI_VALUES,
    NAMESPACE,
    RELEASE,
    HelmError,
    helm,
    kn,
    one,
    render,
    template_text,
)

CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
APP_VERSION = CHART_META["appVersion"]
FULLNAME = f"{RELEASE}-kube-reranker"
CLUSTER_WIDE, NAMESPACED, HA, HA_NAMESPACED, MONITORING = (
    next(p for p in CI_VALUES if feature in p.name)
    for feature in ("cluster-wide", "-namespaced", "ha-peering", "ha-namespaced", "monitoring")
)
OPERATOR_SETTINGS = {
    "RERANKER_OPERATOR_NAMESPACES",
    "RERANKER_OPERATOR_PEERING",
    "RERANKER_OPERATOR_SERVER_IMAGE",
    "RERANKER_OPERATOR_SERVER_GPU_IMAGE",
    "RERANKER_OPERATOR_EXPORT_IMAGE",
    "RERANKER_OPERATOR_RESYNC_SECONDS",
    "RERANKER_OPERATOR_PROMETHEUS_URL",
    "RERANKER_OPERATOR_LOG_FORMAT",
    "RERANKER_OPERATOR_ALLOWED_IMAGE_PREFIXES",
    "RERANKER_OPERATOR_ALLOW_SERVICE_ACCOUNT",
    "RERANKER_OPERATOR_ALLOW_SECRET_ENV",
}


def operator_deployment(*values_files, settings=()) -> dict:
    return one(render(*values_files, settings=settings), "Deployment")


def operator_container(*values_files, settings=()) -> dict:
    return operator_deployment(*values_files, settings=settings)["spec"]["template"]["spec"]["containers"][0]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


# -- operator Deployment -------------------------------------------------------------------------------


def test_operator_runs_one_replica_with_the_recreate_strategy_by_default() -> None:
    spec = operator_deployment()["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_peered_replicas_roll_one_at_a_time_keeping_a_standby() -> None:
    spec = operator_deployment(HA)["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_operator_pod_meets_the_restricted_pod_security_standard() -> None:
    pod = operator_deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_operator_gets_a_writable_tmp_on_its_read_only_root_filesystem() -> None:
    pod = operator_deployment()["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_operator_uid_is_the_non_root_user_the_image_creates() -> None:
    dockerfile = (CHART.parents[1] / "Dockerfile").read_text()
    uid = operator_deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert f"APP_UID={uid}" in dockerfile


def test_liveness_probe_hits_kopfs_health_endpoint_on_port_8080() -> None:
    container = operator_container()
    probe = container["livenessProbe"]
    assert probe["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[probe["httpGet"]["port"]] == 8080
    assert "readinessProbe" not in container


def test_operator_has_resource_requests_and_a_memory_limit() -> None:
    resources = operator_container()["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]


def test_image_tags_default_to_the_chart_app_version() -> None:
    container = operator_container()
    assert container["image"] == f"kube-reranker/reranker-operator:{APP_VERSION}"
    env = env_of(container)
    assert env["RERANKER_OPERATOR_SERVER_IMAGE"] == f"kube-reranker/reranker-server:{APP_VERSION}"
    assert env["RERANKER_OPERATOR_SERVER_GPU_IMAGE"] == f"kube-reranker/reranker-server-gpu:{APP_VERSION}"


def test_one_server_image_value_feeds_the_operator_setting_and_the_helm_test_pod() -> None:
    settings = ("server.image.repository=registry.example/rerank/server", "server.image.tag=1.2.3")
    objects = render(settings=settings)
    env = env_of(one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0])
    test_pod = one(objects, "Pod")
    assert env["RERANKER_OPERATOR_SERVER_IMAGE"] == "registry.example/rerank/server:1.2.3"
    assert test_pod["spec"]["containers"][0]["image"] == "registry.example/rerank/server:1.2.3"


def test_operator_env_carries_exactly_the_operator_settings_contract() -> None:
    names = set(env_of(operator_container()))
    assert {n for n in names if n.startswith("RERANKER_")} == OPERATOR_SETTINGS


def test_operator_replica_names_itself_after_its_pod_for_peering() -> None:
    env = {e["name"]: e for e in operator_container()["env"]}
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_watched_namespaces_reach_the_operator_as_a_comma_list() -> None:
    assert env_of(operator_container())["RERANKER_OPERATOR_NAMESPACES"] == ""
    assert env_of(operator_container(NAMESPACED))["RERANKER_OPERATOR_NAMESPACES"] == "search,rag-staging"


def test_peering_is_off_for_one_replica_and_names_the_peering_object_for_more() -> None:
    assert env_of(operator_container())["RERANKER_OPERATOR_PEERING"] == ""
    assert env_of(operator_container(HA))["RERANKER_OPERATOR_PEERING"] == FULLNAME
    renamed = operator_container(HA, settings=("peering.name=rerankers",))
    assert env_of(renamed)["RERANKER_OPERATOR_PEERING"] == "rerankers"


def test_prometheus_url_and_log_format_reach_the_operator() -> None:
    env = env_of(operator_container(MONITORING))
    assert env["RERANKER_OPERATOR_PROMETHEUS_URL"] == "http://prometheus-operated.monitoring.svc:9090"
    assert env["RERANKER_OPERATOR_LOG_FORMAT"] == "text"


def test_extra_env_is_appended_after_the_settings() -> None:
    container = operator_container(
        settings=("operator.extraEnv[0].name=HTTPS_PROXY", "operator.extraEnv[0].value=http://proxy:3128")
    )
    assert container["env"][-1] == {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}


def test_pod_scheduling_values_reach_the_pod_spec() -> None:
    pod = operator_deployment(HA)["spec"]["template"]["spec"]
    assert "podAntiAffinity" in pod["affinity"]
    pod = operator_deployment(
        settings=("operator.nodeSelector.pool=system", "operator.priorityClassName=system-cluster-critical")
    )
    assert pod["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "system"}
    assert pod["spec"]["template"]["spec"]["priorityClassName"] == "system-cluster-critical"


# -- RBAC ---------------------------------------------------------------------------------------------


def test_cluster_wide_mode_grants_one_cluster_role_and_no_roles() -> None:
    objects = render(CLUSTER_WIDE)
    assert one(objects, "ClusterRole")["metadata"]["name"] == FULLNAME
    assert one(objects, "ClusterRoleBinding")["roleRef"]["name"] == FULLNAME
    assert [o for o in objects if o["kind"] in ("Role", "RoleBinding")] == []


def test_namespaced_mode_grants_a_role_in_each_watched_namespace() -> None:
    objects = render(NAMESPACED)
    roles = {o["metadata"]["namespace"] for o in objects if o["kind"] == "Role"}
    bindings = {o["metadata"]["namespace"] for o in objects if o["kind"] == "RoleBinding"}
    assert roles == bindings == {"search", "rag-staging"}


def test_namespaced_mode_grants_cluster_wide_only_what_kopf_cannot_see_in_a_namespace() -> None:
    cluster_role = one(render(NAMESPACED), "ClusterRole")
    resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert resources == {"customresourcedefinitions", "namespaces"}
    assert {v for rule in cluster_role["rules"] for v in rule["verbs"]} == {"list", "watch"}


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_every_binding_points_at_the_operator_service_account(values_file) -> None:
    objects = render(values_file)
    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert bindings
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
        role_kind = binding["roleRef"]["kind"]
        role = (
            one(objects, role_kind, binding["roleRef"]["name"])
            if role_kind == "ClusterRole"
            else next(
                o
                for o in objects
                if o["kind"] == "Role"
                and o["metadata"] == {**o["metadata"], "namespace": binding["metadata"]["namespace"]}
            )
        )
        assert role["metadata"]["name"] == binding["roleRef"]["name"]


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_no_rule_grants_a_wildcard(values_file) -> None:
    for role in (o for o in render(values_file) if o["kind"] in ("Role", "ClusterRole")):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{kn(role)} grants * in {field}"


def test_rules_are_grouped_under_framework_and_application_comments() -> None:
    text = template_text("templates/rbac.yaml")
    assert "# Framework:" in text
    assert "# Application:" in text


def test_rbac_create_false_renders_no_roles_or_bindings() -> None:
    kinds = {o["kind"] for o in render(settings=("rbac.create=false",))}
    assert kinds.isdisjoint({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})


def test_an_existing_service_account_is_used_when_the_chart_creates_none() -> None:
    objects = render(settings=("serviceAccount.create=false", "serviceAccount.name=platform-operators"))
    assert [o for o in objects if o["kind"] == "ServiceAccount"] == []
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-operators"
    assert one(objects, "ClusterRoleBinding")["subjects"][0]["name"] == "platform-operators"


# -- peering (HA) ---------------------------------------------------------------------------------------


def test_one_replica_renders_no_peering_objects() -> None:
    assert not [o for o in render() if o["kind"] in ("ClusterKopfPeering", "KopfPeering")]


def test_cluster_wide_replicas_share_a_cluster_kopf_peering_object() -> None:
    objects = render(HA)
    assert one(objects, "ClusterKopfPeering")["metadata"]["name"] == FULLNAME
    rules = one(objects, "ClusterRole")["rules"]
    assert any("clusterkopfpeerings" in rule["resources"] for rule in rules)


def test_namespaced_replicas_keep_alive_in_a_kopf_peering_in_each_watched_namespace() -> None:
    objects = render(HA_NAMESPACED)
    peerings = [o for o in objects if o["kind"] == "KopfPeering"]
    assert {p["metadata"]["namespace"] for p in peerings} == {"search", "rag-staging"}
    for role in (o for o in objects if o["kind"] == "Role"):
        assert any("kopfpeerings" in rule["resources"] for rule in role["rules"])


def test_peered_replicas_keep_one_operator_through_voluntary_disruptions() -> None:
    pdb = one(render(HA), "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == operator_deployment()["spec"]["selector"]["matchLabels"]
    assert [o for o in render() if o["kind"] == "PodDisruptionBudget"] == []


# -- example, monitoring, helm test ---------------------------------------------------------------------


def test_example_rerankerdeployment_is_rendered_only_when_enabled() -> None:
    assert [o for o in render() if o["kind"] == "RerankerDeployment"] == []
    example = one(render(CLUSTER_WIDE), "RerankerDeployment")
    assert example["metadata"] == {**example["metadata"], "name": "reranker-minilm", "namespace": NAMESPACE}
    assert example["spec"]["model"]["id"] == "cross-encoder/ms-marco-MiniLM-L-6-v2"


def test_example_goes_to_the_first_watched_namespace_unless_told_otherwise() -> None:
    objects = render(NAMESPACED, settings=("example.namespace=",))
    assert one(objects, "RerankerDeployment")["metadata"]["namespace"] == "search"


def test_example_outside_the_watched_namespaces_is_refused_with_a_message() -> None:
    message = 'example.namespace "elsewhere" is not watched: add it to watchNamespaces'
    with pytest.raises(HelmError, match=re.escape(message)):
        render(NAMESPACED, settings=("example.namespace=elsewhere",))


def test_monitoring_objects_are_absent_by_default() -> None:
    kinds = {o["kind"] for o in render()}
    assert "ServiceMonitor" not in kinds
    assert "Service" not in kinds


def test_service_monitor_scrapes_the_operator_metrics_port_through_its_service() -> None:
    objects = render(MONITORING)
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint == {**endpoint, "port": "metrics", "path": "/metrics", "interval": "15s"}
    service_port = next(p for p in service["spec"]["ports"] if p["name"] == endpoint["port"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container_port = next(p for p in container["ports"] if p["name"] == service_port["targetPort"])
    assert env_of(container)["RERANKER_OPERATOR_METRICS_PORT"] == str(container_port["containerPort"])


def test_helm_test_pod_is_a_test_hook_on_the_pinned_server_image() -> None:
    pod = one(render(CLUSTER_WIDE), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    image = pod["spec"]["containers"][0]["image"]
    assert image.rpartition(":")[2] == APP_VERSION
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_helm_test_queries_the_example_service_in_its_namespace() -> None:
    pod = one(render(NAMESPACED), "Pod")
    args = pod["spec"]["containers"][0]["args"]
    assert "--url=http://reranker-minilm.rag-staging.svc:8080" in args
    pod = one(render(settings=("helmTest.target=bge", "helmTest.namespace=search")), "Pod")
    assert "--url=http://bge.search.svc:8080" in pod["spec"]["containers"][0]["args"]


def test_helm_test_script_ships_in_a_hook_config_map_whose_checksum_rolls_the_pod() -> None:
    objects = render()
    config_map = one(objects, "ConfigMap")
    script = (CHART / "files" / "check_endpoint.py").read_text()
    assert config_map["data"]["check_endpoint.py"] == script
    assert config_map["metadata"]["annotations"]["helm.sh/hook"] == "test"
    pod = one(objects, "Pod")
    assert pod["metadata"]["annotations"]["checksum/script"] == hashlib.sha256(script.encode()).hexdigest()


def test_helm_test_can_be_turned_off() -> None:
    kinds = {o["kind"] for o in render(settings=("helmTest.enabled=false",))}
    assert kinds.isdisjoint({"Pod", "ConfigMap"})


# -- every object ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_every_object_carries_the_release_and_part_of_labels(values_file) -> None:
    for obj in render(values_file):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE, kn(obj)
        assert labels["app.kubernetes.io/part-of"] == "kube-reranker", kn(obj)
        assert labels["app.kubernetes.io/version"] == APP_VERSION, kn(obj)


def test_operator_objects_land_in_the_release_namespace_or_its_override() -> None:
    for obj in render():
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE, kn(obj)
    for obj in render(settings=("namespaceOverride=platform",)):
        if obj["kind"] in ("Deployment", "ServiceAccount"):
            assert obj["metadata"]["namespace"] == "platform", kn(obj)


def test_names_are_cut_to_63_characters_for_a_long_release_name() -> None:
    long_release = "rerank-" + "x" * 46
    assert len(long_release) == 53
    text = helm(
        "template",
        long_release,
        CHART,
        "--namespace",
        NAMESPACE,
        "--values",
        HA_NAMESPACED,
        "--values",
        MONITORING,
    )
    for obj in (doc for doc in yaml.safe_load_all(text) if doc):
        assert len(obj["metadata"]["name"]) <= 63, kn(obj)


def test_notes_print_the_next_commands_and_the_crd_upgrade_path() -> None:
    output = helm("install", RELEASE, CHART, "--namespace", NAMESPACE, "--dry-run=client")
    notes = output.split("NOTES:", 1)[1]
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{FULLNAME}" in notes
    assert "kind: RerankerDeployment" in notes
    assert "port-forward service/reranker-minilm 8080:8080" in notes
    assert "curl -s localhost:8080/v1/rerank" in notes
    assert f"helm test {RELEASE}" in notes
    assert "kubectl apply --server-side -f crds/" in notes


def test_default_images_agree_with_the_operator_and_the_package_version() -> None:
    """One version everywhere: pyproject, the chart's appVersion and the operator's built-in defaults."""
    from reranker_operator import config

    pyproject = (CHART.parents[1] / "pyproject.toml").read_text()
    assert re.search(rf'^version = "{re.escape(APP_VERSION)}"$', pyproject, re.MULTILINE)
    env = env_of(operator_container())
    assert env["RERANKER_OPERATOR_SERVER_IMAGE"] == config.DEFAULT_SERVER_IMAGE
    assert env["RERANKER_OPERATOR_SERVER_GPU_IMAGE"] == config.DEFAULT_SERVER_GPU_IMAGE


def test_operator_settings_the_chart_writes_are_accepted_by_the_operator() -> None:
    """The rendered env, fed to the operator's own settings parser, yields the intended settings."""
    from reranker_operator import config

    env = env_of(operator_container(HA_NAMESPACED, MONITORING))
    settings = config.OperatorConfig.from_env({k: v for k, v in env.items() if v is not None})
    assert settings.namespaces == ("search", "rag-staging")
    assert settings.peering == FULLNAME
    assert settings.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"
    assert settings.log_format == "text"
    assert settings.metrics_port == 9090
