"""The pure builders, read as plain dicts: what lands in the cluster for a given spec."""

from __future__ import annotations

import copy
import re

import pytest
from reranker_operator import api, naming
from reranker_operator.config import OperatorConfig
from reranker_operator.plan import Capabilities, image_for, plan_children
from reranker_operator.resources import deployment as dep
from reranker_operator.resources import promql, scaling
from reranker_operator.resources.common import ChildRef
from reranker_operator.resources.hpa import build_hpa
from reranker_operator.resources.pdb import build_pdb
from reranker_operator.resources.preparation import plan_preparation
from reranker_operator.resources.prometheusrule import build_prometheusrule
from reranker_operator.resources.quantity import mebibytes, same_value, value, whole_cores
from reranker_operator.resources.scaledobject import build_scaledobject
from reranker_operator.resources.service import build_service
from reranker_operator.resources.servicemonitor import build_servicemonitor

REF = ChildRef(cr_name="minilm", namespace="search")
SETTINGS = OperatorConfig()


def spec(**fields) -> api.RerankerDeploymentSpec:
    return api.parse_spec({"model": {"id": "cross-encoder/ms-marco-MiniLM-L-6-v2"}, **fields})


def deployment(s: api.RerankerDeploymentSpec, *, autoscaled: bool = True, image: str = "img:1") -> dict:
    return dep.build_deployment(
        s,
        REF,
        image=image,
        autoscaled=autoscaled,
        preparation=plan_preparation(s, REF, image=SETTINGS.export_image),
        export_image=SETTINGS.export_image,
    )


def server(d: dict) -> dict:
    (container,) = d["spec"]["template"]["spec"]["containers"]
    return container


def env_of(d: dict) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in server(d)["env"]}


def test_the_server_container_runs_serve_with_the_settings_contract():
    s = spec(
        model={
            "id": "BAAI/bge-reranker-v2-m3",
            "revision": "abc123",
            "maxLength": 384,
            "quantization": "int8",
        },
        maxCandidates=64,
        maxCandidatesPolicy="truncate",
        latencySLO={"p95Milliseconds": 250},
        batching={"maxBatchTokens": 8192, "maxWaitMilliseconds": 3},
        warmup={"requests": 7},
        resources={"limits": {"cpu": "3", "memory": "4Gi"}},
    )
    container = server(deployment(s))
    digest = naming.recipe_digest("BAAI/bge-reranker-v2-m3", "abc123", "cpu", "int8")
    assert (container["command"], container["args"]) == (["reranker-server"], ["serve"])
    assert env_of(deployment(s)) == {
        "RERANKER_HOST": "0.0.0.0",
        "RERANKER_PORT": "8080",
        "RERANKER_METRICS_PORT": "9090",
        "RERANKER_MODEL": "BAAI/bge-reranker-v2-m3",
        "RERANKER_REVISION": "abc123",
        "RERANKER_CACHE_DIR": "/cache",
        "RERANKER_ARTEFACT": f"/cache/artefacts/bge-reranker-v2-m3-{digest}",
        "RERANKER_TERMINATION_LOG": "/dev/termination-log",
        "RERANKER_QUANTIZE": "int8",
        "RERANKER_MAX_LENGTH": "384",
        "RERANKER_BACKEND": "cpu",
        "RERANKER_MAX_CANDIDATES": "64",
        "RERANKER_K_CAP_POLICY": "truncate",
        "RERANKER_MAX_BATCH_TOKENS": "8192",
        "RERANKER_MAX_BATCH_WAIT_MS": "3",
        "RERANKER_LATENCY_SLO_MS": "250",
        "RERANKER_WARMUP_REQUESTS": "7",
        "RERANKER_INTRA_OP_THREADS": "3",
        "RERANKER_DRAIN_TIMEOUT_S": "20",
        "RERANKER_LOG_FORMAT": "json",
        "HOME": "/tmp",
        "HF_HOME": "/cache/huggingface",
    }


def test_every_managed_env_var_is_rendered_from_the_spec():
    assert set(api.MANAGED_ENV) <= set(env_of(deployment(spec(auth={"secretName": "search-keys"}))))


def test_user_env_comes_after_the_contract_and_may_override_home():
    s = spec(
        env=[
            {"name": "HF_HOME", "value": "/cache/hub"},
            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {}}},
        ]
    )
    names = [item["name"] for item in server(deployment(s))["env"]]
    assert names.count("HF_HOME") == 1
    assert names[-2:] == ["HF_HOME", "HF_TOKEN"]
    assert env_of(deployment(s))["HF_HOME"] == "/cache/hub"


def test_readiness_waits_for_warm_up_and_startup_allows_the_configured_budget():
    container = server(deployment(spec(warmup={"startupTimeoutSeconds": 1805})))
    startup, readiness, liveness = (container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe"))
    assert startup["httpGet"] == readiness["httpGet"] == {"path": "/ready", "port": "http"}
    assert liveness["httpGet"] == {"path": "/health", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1805


def test_rollouts_never_drop_ready_capacity():
    d = deployment(spec())
    assert d["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert d["spec"]["progressDeadlineSeconds"] > spec().warmup.startup_timeout_seconds


def test_shutdown_outlasts_the_pre_stop_pause_and_the_server_drain():
    pod = deployment(spec())["spec"]["template"]["spec"]
    pre_stop = int(server(deployment(spec()))["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + int(
        env_of(deployment(spec()))["RERANKER_DRAIN_TIMEOUT_S"]
    )


def test_the_pod_is_locked_down_with_writable_cache_and_tmp_only():
    pod = deployment(spec())["spec"]["template"]["spec"]
    container = server(deployment(spec()))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/cache", "/tmp"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # no RERANKER_PORT=tcp://... from a Service named "reranker"


@pytest.mark.parametrize(
    ("resources", "threads"),
    [
        ({"limits": {"cpu": "4"}, "requests": {"cpu": "2"}}, "4"),
        ({"requests": {"cpu": "1500m"}}, "1"),
        ({"limits": {"cpu": "250m"}}, "1"),
        ({"limits": {"memory": "2Gi"}}, "0"),
    ],
)
def test_onnx_threads_follow_the_cpu_limit(resources, threads):
    assert env_of(deployment(spec(resources=resources)))["RERANKER_INTRA_OP_THREADS"] == threads


def test_default_cpu_resources_are_guaranteed_and_match_the_threads():
    container = server(deployment(spec()))
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"] == "2"
    assert env_of(deployment(spec()))["RERANKER_INTRA_OP_THREADS"] == "2"


def test_gpu_backend_asks_for_gpus_tolerates_the_gpu_taint_and_uses_the_gpu_image():
    s = spec(backend="gpu", gpu={"count": 2}, resources={"limits": {"cpu": "4", "nvidia.com/gpu": "8"}})
    d = deployment(s, image=image_for(s, SETTINGS))
    assert server(d)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in d["spec"]["template"][
        "spec"
    ]["tolerations"]
    assert server(d)["image"] == SETTINGS.server_gpu_image
    assert env_of(d)["RERANKER_BACKEND"] == "gpu"


def test_an_explicit_image_wins_over_the_operator_default():
    assert image_for(spec(image="registry.example/reranker:dev"), SETTINGS) == "registry.example/reranker:dev"
    assert image_for(spec(), SETTINGS) == SETTINGS.server_image


@pytest.mark.parametrize(
    ("cache", "volume"),
    [
        ({}, {"name": "cache", "emptyDir": {"sizeLimit": "4Gi"}}),
        ({"sizeMebibytes": 1536}, {"name": "cache", "emptyDir": {"sizeLimit": "1536Mi"}}),
        (
            {"claimName": "models"},
            {"name": "cache", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}},
        ),
    ],
)
def test_the_model_cache_is_an_emptydir_or_the_named_claim(cache, volume):
    s = spec(model={"id": "m", "cache": cache})
    assert deployment(s)["spec"]["template"]["spec"]["volumes"][0] == volume


def test_replicas_are_left_to_the_autoscaler_unless_there_is_none():
    assert "replicas" not in deployment(spec(replicas={"min": 2, "max": 5}))["spec"]
    assert deployment(spec(replicas={"min": 2, "max": 5}), autoscaled=False)["spec"]["replicas"] == 2


def test_pod_template_overrides_reach_the_pod_but_never_the_selector_labels():
    overrides = {
        "labels": {"team": "search", naming.LABEL_COMPONENT: "mine"},
        "annotations": {"prometheus.io/scrape": "false"},
        "nodeSelector": {"pool": "inference"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}},
        "priorityClassName": "high",
        "imagePullSecrets": [{"name": "registry"}],
        "serviceAccountName": "reranker",
    }
    template = deployment(spec(podTemplate=overrides))["spec"]["template"]
    pod = template["spec"]
    assert template["metadata"]["labels"]["team"] == "search"
    assert template["metadata"]["labels"][naming.LABEL_COMPONENT] == naming.COMPONENT
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "false"
    assert pod["nodeSelector"] == {"pool": "inference"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert pod["affinity"] == {"nodeAffinity": {}}
    assert (pod["priorityClassName"], pod["serviceAccountName"]) == ("high", "reranker")
    assert pod["imagePullSecrets"] == [{"name": "registry"}]


def test_builders_never_share_state_with_the_spec():
    s = spec(
        env=[{"name": "A", "value": "1"}], podTemplate={"tolerations": [{"key": "k", "operator": "Exists"}]}
    )
    before = copy.deepcopy(s.model_dump())
    d = deployment(s)
    server(d)["env"][-1]["value"] = "changed"
    d["spec"]["template"]["spec"]["tolerations"][0]["key"] = "changed"
    assert s.model_dump() == before


def test_every_child_is_named_after_the_cr_and_labelled_for_it():
    plan = plan_children(
        spec(replicas={"min": 2, "max": 3}),
        REF,
        OperatorConfig(prometheus_url="http://p:9090"),
        Capabilities(True, True, True),
    )
    assert len(plan.children) == 7
    for child in plan.children:
        assert child["metadata"]["name"] == "minilm"
        assert child["metadata"]["namespace"] == "search"
        assert child["metadata"]["labels"] == naming.labels("minilm")


def test_the_longest_allowed_name_fits_every_child():
    name = "a" * naming.MAX_NAME_LENGTH
    api.check_name(name)
    with pytest.raises(ValueError, match="DNS-1035"):
        api.check_name(name + "a")
    for child in plan_children(
        spec(), ChildRef(name, "ns"), SETTINGS, Capabilities(True, True, True)
    ).children:
        assert len(child["metadata"]["name"]) <= 63
        assert re.match(naming.DNS1035_LABEL_PATTERN, child["metadata"]["name"])
        assert all(len(v) <= 63 for v in child["metadata"]["labels"].values())


def test_the_service_exposes_http_and_metrics():
    service = build_service(spec(), REF)
    assert service["spec"]["selector"] == naming.selector_labels("minilm")
    ports = {port["name"]: (port["port"], port["targetPort"]) for port in service["spec"]["ports"]}
    assert ports == {"http": (8080, "http"), "metrics": (9090, "metrics")}


def test_the_hpa_targets_the_deployment_on_p95_and_in_flight_requests():
    s = spec(
        replicas={"min": 2, "max": 9},
        latencySLO={"p95Milliseconds": 500},
        autoscaling={"sloHeadroomPercent": 80, "inFlightPerReplica": 6, "scaleDownStabilizationSeconds": 420},
    )
    hpa = build_hpa(s, REF)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "minilm"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 9)
    p95, in_flight = hpa["metrics"]
    assert p95["object"]["describedObject"] == {"apiVersion": "v1", "kind": "Service", "name": "minilm"}
    assert p95["object"]["metric"]["name"] == promql.HPA_P95_METRIC
    assert p95["object"]["target"] == {"type": "Value", "value": "400m"}  # 80 % of 500 ms, in seconds
    assert in_flight["pods"]["target"] == {"type": "AverageValue", "averageValue": "6"}
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 420


def test_the_scaledobject_uses_a_value_metric_for_p95():
    s = spec(latencySLO={"p95Milliseconds": 300}, autoscaling={"sloHeadroomPercent": 75})
    so = build_scaledobject(s, REF, prometheus_url="http://prometheus:9090")["spec"]
    p95, in_flight = so["triggers"]
    assert (p95["type"], p95["metricType"]) == ("prometheus", "Value")
    assert p95["metadata"] == {
        "serverAddress": "http://prometheus:9090",
        "query": promql.p95_seconds("search", "minilm"),
        "threshold": "0.225",
        "ignoreNullValues": "false",
    }
    assert in_flight["metricType"] == "AverageValue"
    assert in_flight["metadata"]["query"] == promql.in_flight_total("search", "minilm")
    assert so["advanced"]["horizontalPodAutoscalerConfig"] == {"behavior": scaling.behavior(s)}


def test_the_scaledobject_never_reads_lost_series_as_zero():
    so = build_scaledobject(spec(), REF, prometheus_url="http://prometheus:9090")["spec"]
    assert {trigger["metadata"]["ignoreNullValues"] for trigger in so["triggers"]} == {"false"}


def test_the_pdb_keeps_all_but_one_replica_and_exists_only_above_one():
    assert build_pdb(spec(), REF)["spec"]["maxUnavailable"] == 1
    kinds = {
        c["kind"] for c in plan_children(spec(replicas={"min": 1}), REF, SETTINGS, Capabilities()).children
    }
    assert "PodDisruptionBudget" not in kinds


def test_the_servicemonitor_scrapes_the_metrics_port_with_the_instance_label():
    (endpoint,) = build_servicemonitor(spec(), REF)["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["honorLabels"]) == ("metrics", "/metrics", True)
    assert build_servicemonitor(spec(), REF)["spec"]["podTargetLabels"] == [naming.LABEL_INSTANCE]


def test_the_prometheusrule_alerts_on_the_slo_and_on_health():
    (group,) = build_prometheusrule(spec(latencySLO={"p95Milliseconds": 400}), REF)["spec"]["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert set(alerts) == {
        "RerankerP95AboveSLO",
        "RerankerP95FarAboveSLO",
        "RerankerErrorRatioHigh",
        "RerankerKCapRejectionsRising",
        "RerankerPodStuckWarmingUp",
        "RerankerReplicasUnavailable",
    }
    assert alerts["RerankerP95AboveSLO"]["expr"] == f"{promql.p95_seconds('search', 'minilm')} > 0.4"
    assert alerts["RerankerP95FarAboveSLO"]["expr"] == f"{promql.p95_seconds('search', 'minilm')} > 0.8"
    assert alerts["RerankerP95FarAboveSLO"]["labels"]["severity"] == "critical"
    assert all(
        rule["annotations"]["runbook"]
        and rule["labels"]["rerankerdeployment"] == "minilm"
        and rule["labels"]["namespace"] == "search"
        for rule in alerts.values()
    )


@pytest.mark.parametrize(
    ("startup_seconds", "minutes"), [(300, "15m"), (900, "15m"), (1800, "30m"), (1830, "31m")]
)
def test_warm_up_alerts_wait_at_least_the_startup_budget(startup_seconds, minutes):
    s = spec(warmup={"startupTimeoutSeconds": startup_seconds})
    (group,) = build_prometheusrule(s, REF)["spec"]["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert alerts["RerankerPodStuckWarmingUp"]["for"] == minutes
    assert alerts["RerankerReplicasUnavailable"]["for"] == minutes


def test_p95_is_computed_over_summed_buckets_of_one_deployment_and_reads_zero_when_idle():
    labels = 'namespace="search",app_kubernetes_io_instance="minilm"'
    series = f"reranker_request_duration_seconds_bucket{{{labels}}}"
    buckets = f"rate({series}[2m])"
    assert promql.p95_seconds("search", "minilm") == (
        f"(histogram_quantile(0.95, sum by (le) ({buckets})) >= 0 or sum({buckets}) * 0)"
    )


def test_the_adapter_p95_is_the_same_expression_over_the_adapters_template_holes():
    buckets = "rate(<<.Series>>{<<.LabelMatchers>>}[2m])"
    assert promql.adapter_p95_query() == (
        f"(histogram_quantile(0.95, sum by (le, <<.GroupBy>>) ({buckets})) >= 0 "
        f"or sum by (<<.GroupBy>>) ({buckets}) * 0)"
    )


@pytest.mark.parametrize(
    ("metrics_source", "keda_installed", "url", "expected", "problem"),
    [
        ("auto", False, None, "prometheus-adapter", None),
        ("auto", True, None, "prometheus-adapter", None),
        ("auto", True, "http://p:9090", "keda", None),
        ("prometheus-adapter", True, "http://p:9090", "prometheus-adapter", None),
        ("keda", True, "http://p:9090", "keda", None),
        ("keda", False, "http://p:9090", None, "KEDAUnavailable"),
        ("keda", True, None, None, "PrometheusURLMissing"),
    ],
)
def test_the_metrics_source_follows_the_spec_and_the_cluster(
    metrics_source, keda_installed, url, expected, problem
):
    plan = plan_children(
        spec(autoscaling={"metricsSource": metrics_source}),
        REF,
        OperatorConfig(prometheus_url=url),
        Capabilities(scaled_objects=keda_installed),
    )
    kinds = {child["kind"] for child in plan.children}
    assert plan.metrics_source == expected
    assert ("HorizontalPodAutoscaler" in kinds) == (expected == "prometheus-adapter")
    assert ("ScaledObject" in kinds) == (expected == "keda")
    assert [p.reason for p in plan.problems] == ([problem] if problem else [])


def test_monitoring_objects_need_their_crds_and_the_spec_switch():
    def kinds(monitoring, served):
        plan = plan_children(spec(monitoring=monitoring), REF, SETTINGS, Capabilities(served, served, False))
        return {child["kind"] for child in plan.children}

    assert {"ServiceMonitor", "PrometheusRule"} <= kinds({}, served=True)
    assert not {"ServiceMonitor", "PrometheusRule"} & kinds({}, served=False)
    assert "ServiceMonitor" not in kinds({"serviceMonitor": False}, served=True)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("500m", "0.5"), (2, "2"), ("1.5", "1.5"), ("4Gi", "4294967296"), ("1e3", "1000")],
)
def test_quantities_are_parsed_exactly(quantity, expected):
    assert value(quantity) == value(expected)


def test_quantities_compare_by_value_and_sizes_render_canonically():
    assert same_value("4096Mi", "4Gi")
    assert same_value("2000m", 2)
    assert not same_value("2", "2Gi")
    assert (mebibytes(4096), mebibytes(1536), mebibytes(1048576)) == ("4Gi", "1536Mi", "1Ti")
    assert whole_cores("2500m") == 2
    assert whole_cores("100m") == 1
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        value("2 cores")
