"""Chart documentation: the values table is generated from values.yaml and cannot drift; values.yaml
follows one comment style; the prometheus-adapter snippet serves the metrics the operator's HPA reads,
in PromQL that Prometheus itself parses."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.chart.rendering import CHART, REPO

GENERATOR = REPO / "scripts" / "gen-chart-docs.py"
ADAPTER_VALUES = CHART / "docs" / "prometheus-adapter-values.yaml"
PROMTOOL_HINT = "promtool is missing: run `bash scripts/install-tools.sh` (or `make tools`)"
CONTRACT_METRICS = {"reranker_request_duration_seconds_bucket", "reranker_requests_in_flight"}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_chart_docs", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


def check_docs(chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    """The generator's drift check (`--check`) over `chart`, as CI runs it."""
    return subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--chart", str(chart)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    """A copy of the chart whose values.yaml a test may edit."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    return chart


def adapter_rules() -> list[dict]:
    return yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]


def test_values_yaml_starts_with_the_schema_modeline() -> None:
    first_line = (CHART / "values.yaml").read_text().splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=values.schema.json"


def test_chart_readme_values_table_matches_values_yaml() -> None:
    result = check_docs()
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_drift_check_fails_on_a_stale_table_showing_the_missing_row(chart_copy: Path) -> None:
    values = chart_copy / "values.yaml"
    values.write_text(
        values.read_text().replace("replicas: 1\n", "replicas: 1\n  # -- Added.\n  added: 1\n", 1)
    )
    stale = check_docs(chart_copy)
    assert stale.returncode == 1
    assert "+| `operator.added` | int | `1` | Added. |" in stale.stdout


def test_the_drift_check_fails_on_an_undocumented_key_naming_it(chart_copy: Path) -> None:
    values = chart_copy / "values.yaml"
    values.write_text(values.read_text().replace("replicas: 1\n", "replicas: 1\n  added: 1\n", 1))
    undocumented = check_docs(chart_copy)
    assert undocumented.returncode == 1
    assert "values.yaml keys without a '# --' comment: operator.added" in undocumented.stderr


def test_every_values_key_has_a_doc_comment() -> None:
    generator = load_generator()
    docs = generator.value_docs(CHART / "values.yaml")
    assert all(doc.description for doc in docs)
    assert "operator.replicas" in {doc.path for doc in docs}


def test_table_rows_show_type_default_and_description() -> None:
    generator = load_generator()
    table = generator.render_table(generator.value_docs(CHART / "values.yaml"))
    assert '| `operator.logFormat` | string | `"json"` | Operator log format:' in table


def test_root_readme_has_a_helm_chart_section_linking_the_chart_readme() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Helm chart\n", 1)
    assert len(section) == 2, "README.md has no '## Helm chart' section"
    body = section[1].split("\n## ", 1)[0]
    assert "charts/kube-reranker/README.md" in body
    assert "kubectl apply --server-side -f charts/kube-reranker/crds/" in body


def test_adapter_rules_serve_the_metric_names_the_operators_hpa_reads() -> None:
    from reranker_operator.resources import promql as operator_promql

    served = {rule["name"]["as"] for rule in adapter_rules()}
    assert served == {operator_promql.HPA_P95_METRIC, operator_promql.HPA_IN_FLIGHT_METRIC}


def test_adapter_rules_read_only_metrics_the_server_exports() -> None:
    series = {re.match(r"\s*([a-z_]+)\{", rule["seriesQuery"]).group(1) for rule in adapter_rules()}
    assert series == CONTRACT_METRICS


def test_p95_rule_ties_series_to_the_service_by_the_instance_label_the_operator_selects_on() -> None:
    from reranker_operator.resources import promql as operator_promql

    p95 = next(r for r in adapter_rules() if r["name"]["as"] == operator_promql.HPA_P95_METRIC)
    assert p95["resources"]["overrides"][operator_promql.INSTANCE_LABEL] == {"resource": "service"}
    assert f"[{operator_promql.RATE_WINDOW}]" in p95["metricsQuery"]
    assert "histogram_quantile(0.95, sum by (le," in p95["metricsQuery"]


def test_adapter_queries_are_valid_promql(tmp_path: Path) -> None:
    """prometheus-adapter fills the <<...>> holes; with them filled as it would, promtool must parse it."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(PROMTOOL_HINT, pytrace=False)
    filled = []
    for index, rule in enumerate(adapter_rules()):
        series = re.match(r"\s*([a-z_]+)\{", rule["seriesQuery"]).group(1)
        resource_label = next(iter(label for label in rule["resources"]["overrides"] if label != "namespace"))
        query = (
            rule["metricsQuery"]
            .replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", f'namespace="search",{resource_label}="reranker-minilm"')
            .replace("<<.GroupBy>>", resource_label)
        )
        assert "<<" not in query, query
        filled.append({"record": f"adapter:rule{index}", "expr": query})
    rules_file = tmp_path / "adapter-rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": filled}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout
