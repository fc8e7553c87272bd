"""`reranker-operator crd | render | run` as users and the chart call them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from reranker_operator import api, cli, config, naming

from tests.operator.conftest import EXAMPLES, RESOURCES_DIR, ROOT

BIN = Path(sys.executable).parent / "reranker-operator"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False
    )


def test_crd_prints_the_committed_crd():
    result = run_cli("crd")
    assert result.returncode == 0
    assert result.stdout == (ROOT / "crds" / "rerankerdeployments.kube-reranker.io.yaml").read_text()


def test_render_prints_the_children_of_every_example_without_a_cluster():
    result = run_cli("render", "-f", *map(str, EXAMPLES))  # what `render -f examples/*.yaml` expands to
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    shared = {"Job", "PersistentVolumeClaim"}
    shared_names = {obj["metadata"]["name"] for obj in objects if obj["kind"] in shared}
    children = {obj["metadata"]["name"] for obj in objects if obj["kind"] not in shared} - shared_names
    assert children == {yaml.safe_load(path.read_text())["metadata"]["name"] for path in EXAMPLES}
    assert {"Deployment", "Service"} <= {obj["kind"] for obj in objects}


def test_render_of_the_gpu_example_shows_the_preparation_job_and_the_mounted_artefact():
    objects = list(yaml.safe_load_all(run_cli("render", "-f", "examples/bge-m3-gpu.yaml").stdout))
    by_kind = {obj["kind"]: obj for obj in objects}
    claim, job, deployment = by_kind["PersistentVolumeClaim"], by_kind["Job"], by_kind["Deployment"]
    (prepare,) = job["spec"]["template"]["spec"]["containers"]
    out = prepare["args"][prepare["args"].index("--out") + 1]
    pod = deployment["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert {"name": "RERANKER_ARTEFACT", "value": out} in server["env"]
    assert {
        "name": "cache",
        "persistentVolumeClaim": {"claimName": claim["metadata"]["name"], "readOnly": True},
    } in (pod["volumes"])
    assert (
        job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        == (claim["metadata"]["name"])
    )


def test_render_shows_the_prometheus_adapter_path_unless_keda_is_asked_for():
    objects = list(yaml.safe_load_all(run_cli("render", "-f", "examples/minilm-cpu.yaml").stdout))
    assert [obj["kind"] for obj in objects] == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ]


def test_render_of_a_keda_example_shows_the_scaledobject_given_a_prometheus_url():
    result = run_cli(
        "render",
        "-f",
        "examples/minilm-keda.yaml",
        "--with-prometheus-operator",
        "--prometheus-url",
        "http://p:9090",
    )
    kinds = [obj["kind"] for obj in yaml.safe_load_all(result.stdout)]
    assert kinds == [
        "NetworkPolicy",
        "Job",
        "Deployment",
        "Service",
        "ScaledObject",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
    ]


def test_render_warns_when_keda_has_no_prometheus_url():
    result = run_cli("render", "-f", "examples/minilm-keda.yaml")
    assert result.returncode == 0
    assert "RERANKER_OPERATOR_PROMETHEUS_URL" in result.stderr
    assert "ScaledObject" not in result.stdout


def test_render_of_an_invalid_manifest_fails_and_names_the_problem():
    result = run_cli("render", "-f", str(RESOURCES_DIR / "invalid-specs.yaml"))
    assert result.returncode != 0
    assert "min-above-max" in result.stderr
    assert "replicas.min must be less than or equal to replicas.max" in result.stderr
    assert result.stdout == ""


def test_render_reports_every_problem_of_every_manifest_at_once(tmp_path):
    broken = {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {"name": "Bad_Name"},
        "spec": {
            "model": {"id": "m", "quantization": "int8"},
            "backend": "gpu",
            "gpu": {"count": 1},
            "maxCandidates": 5000,
        },
    }
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump_all([broken, {**broken, "metadata": {"name": "second"}}]))
    result = run_cli("render", "-f", str(manifest))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ", 2)[1] for line in lines] == [
        "RerankerDeployment Bad_Name",
        "RerankerDeployment second",
    ]
    assert "metadata.name" in lines[0]
    assert "maxCandidates" in lines[1]
    invalid = len(
        [doc for doc in yaml.safe_load_all((RESOURCES_DIR / "invalid-specs.yaml").read_text()) if doc]
    )
    assert (
        len(run_cli("render", "-f", str(RESOURCES_DIR / "invalid-specs.yaml")).stderr.strip().splitlines())
        == invalid
    )


def test_a_spec_that_breaks_several_rules_hears_of_each():
    with pytest.raises(api.InvalidSpecError) as raised:
        api.parse_spec(
            {
                "model": {"id": "m", "quantization": "int8", "maxLength": 8192},
                "backend": "gpu",
                "maxCandidates": 1000,
                "env": [{"name": "RERANKER_MODEL", "value": "x"}],
            }
        )
    message = str(raised.value)
    for rule in ("int8 is a CPU optimisation", "maxCandidates x model.maxLength", "env must not set"):
        assert rule in message


def test_run_without_any_cluster_configuration_says_where_it_looked_and_exits_2(tmp_path):
    result = subprocess.run(
        [BIN, "run"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "no usable cluster configuration: looked for ~/.kube/config" in line
    assert "KUBECONFIG" in line


def test_run_help_lists_every_setting_with_its_variable_and_default():
    shown = run_cli("run", "--help").stdout
    for field, variable in config.ENV_NAMES.items():
        assert variable in shown, field
    assert "RERANKER_OPERATOR_RESYNC_SECONDS" in shown
    assert "[default: 300]" in shown


def operator_variables_named_in(path: Path) -> set[str]:
    return set(re.findall(r"\bRERANKER_OPERATOR_[A-Z_]*[A-Z]\b", path.read_text()))


@pytest.mark.parametrize(
    "doc", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))], ids=lambda path: path.name
)
def test_every_operator_setting_the_docs_name_is_a_real_setting(doc: Path):
    assert operator_variables_named_in(doc) <= set(config.ENV_NAMES.values())


def test_the_operator_settings_table_lists_every_setting():
    settings = {name for name in config.ENV_NAMES.values() if name.startswith("RERANKER_OPERATOR_")}
    assert settings <= operator_variables_named_in(ROOT / "docs" / "operator.md")


def test_render_rejects_other_kinds():
    with pytest.raises(cli.RenderError, match=r"expected kube-reranker\.io/v1alpha1 RerankerDeployment"):
        cli.render([{"apiVersion": "v1", "kind": "Service"}], config.OperatorConfig(), cli.Capabilities())


def test_render_adopts_children_when_the_manifest_has_a_uid():
    cr = yaml.safe_load((ROOT / "examples" / "minilm-cpu.yaml").read_text())
    cr["metadata"]["uid"] = "0f6c"
    objects, _ = cli.render([cr], config.OperatorConfig(), cli.Capabilities())
    assert {obj["metadata"]["ownerReferences"][0]["uid"] for obj in objects} == {"0f6c"}


def test_run_starts_kopf_cluster_wide_and_standalone_by_default():
    argv = cli.kopf_argv(config.OperatorConfig())
    assert argv[:3] == ["run", "--module", "reranker_operator.handlers"]
    assert argv[3:5] == ["--liveness", "http://0.0.0.0:8080/healthz"]
    assert "--all-namespaces" in argv
    assert "--standalone" in argv
    assert "--namespace" not in argv


def test_run_watches_the_listed_namespaces_with_peering_and_json_logs():
    settings = config.OperatorConfig(namespaces=("search", "ads"), peering="kube-reranker", log_format="json")
    argv = cli.kopf_argv(settings, verbose=True)
    assert "--all-namespaces" not in argv
    assert argv[argv.index("--namespace") :][:4] == ["--namespace", "search", "--namespace", "ads"]
    assert argv[argv.index("--peering") + 1] == "kube-reranker"
    assert "--standalone" not in argv
    assert argv[argv.index("--log-format") + 1] == "json"
    assert argv[-1] == "--verbose"


def test_peered_replicas_run_with_a_priority_derived_from_their_pod_name():
    def priority(pod_id: str) -> int:
        argv = cli.kopf_argv(config.OperatorConfig(peering="kube-reranker", pod_id=pod_id))
        return int(argv[argv.index("--priority") + 1])

    pods = [f"kube-reranker-operator-6f7d9c-{suffix:05x}" for suffix in range(200)]
    priorities = [priority(pod) for pod in pods]
    assert len(set(priorities)) == len(pods)
    assert all(1 <= value <= cli.MAX_PRIORITY for value in priorities)
    assert priority(pods[0]) == priority(pods[0])  # a restarted process keeps its pod's priority


def test_a_standalone_operator_gets_no_priority():
    assert "--priority" not in cli.kopf_argv(config.OperatorConfig(pod_id="kube-reranker-operator-0"))


def test_a_broken_setting_stops_the_cli_with_the_variable_name():
    result = run_cli("crd", env={"PATH": "/usr/bin:/bin", "RERANKER_OPERATOR_LOG_FORMAT": "xml"})
    assert result.returncode != 0
    assert "RERANKER_OPERATOR_LOG_FORMAT" in result.stderr
