"""The generated CRD: in sync with the models, structural, and enforcing what the API promises."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from reranker_operator import api, crdgen, naming, upstream

from tests.operator.conftest import EXAMPLES, RESOURCES_DIR, ROOT, load_yaml
from tests.operator.crd_schema import admit

CRD_FILE = ROOT / "crds" / f"{naming.CRD_NAME}.yaml"
CHART_CRD_FILE = ROOT / "charts" / "kube-reranker" / "crds" / f"{naming.CRD_NAME}.yaml"
UNIT_SUFFIXES = ("Milliseconds", "Seconds", "Tokens", "Mebibytes", "Percent")
# Integer fields that count things rather than measure them (maxLength counts tokens, as in HF).
COUNTS = {
    "min",
    "max",
    "count",
    "requests",
    "maxCandidates",
    "maxLength",
    "inFlightPerReplica",
    "backoffLimit",
}
STATUS_COUNTS = {"observedGeneration", "replicas", "readyReplicas", "sizeBytes"}
#: Integers that are TCP port numbers: their own unit.
PORTS = {"preparationEgressPorts[]"}
EXPECTED_ERROR = "test.kube-reranker.io/expected-error"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_FILE.read_text())


@pytest.fixture(scope="module")
def schema(crd) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def static_crs(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((RESOURCES_DIR / name).read_text()))


def nodes(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, schema
    for name, prop in (schema.get("properties") or {}).items():
        yield from nodes(prop, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from nodes(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[]")


def own_nodes(schema: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Nodes defined by api.py, not inlined from the upstream Kubernetes schemas."""
    upstream_fields = (
        ".resources",
        ".env",
        ".tolerations",
        ".affinity",
        ".imagePullSecrets",
        ".conditions",
        ".topologySpreadConstraints",
    )
    for path, node in nodes(schema):
        if not any(marker in path for marker in upstream_fields):
            yield path, node


def test_the_committed_crd_is_what_the_generator_produces():
    assert CRD_FILE.read_text() == crdgen.render_crd(), (
        "crds/ is stale: run `make crds` and commit the result"
    )


def test_the_chart_ships_the_same_crd_file():
    assert CHART_CRD_FILE.read_text() == CRD_FILE.read_text(), (
        "run `make crds` to copy the CRD into the chart"
    )


def test_the_vendored_upstream_schemas_match_kubernetes_validate():
    vendored = json.loads(upstream.VENDORED.read_text())
    fresh = upstream.extract(crdgen.upstream_definition_names())
    assert vendored == fresh, "refresh with `python -m reranker_operator.upstream` and regenerate the CRD"


def test_the_crd_is_generated_deterministically():
    assert crdgen.render_crd() == crdgen.render_crd()


def test_every_node_is_structural(schema):
    for path, node in nodes(schema):
        assert "$ref" not in node, path
        assert "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "anyOf" not in node, path
            assert "oneOf" not in node, path
            assert node.get("type") in {"object", "array", "string", "integer", "boolean"}, path


def test_the_api_has_no_floats(schema):
    assert not [path for path, node in nodes(schema) if node.get("type") == "number"]


def test_every_field_is_described(schema):
    undescribed = [
        path for path, node in nodes(schema) if path and path != ".metadata" and not node.get("description")
    ]
    assert not [path for path in undescribed if not path.endswith(("[]", ".*"))]


def test_integer_fields_name_their_unit_or_count_something(schema):
    for path, node in own_nodes(schema):
        if node.get("type") == "integer":
            name = path.rsplit(".", 1)[-1]
            assert name.endswith(UNIT_SUFFIXES) or name in COUNTS | STATUS_COUNTS | PORTS, path


def test_integer_spec_fields_are_bounded(schema):
    for path, node in own_nodes(schema["properties"]["spec"]):
        if node.get("type") == "integer":
            assert "minimum" in node, path
            assert "maximum" in node, path


def test_the_status_has_conditions_keyed_by_type_and_no_phase(schema):
    status = schema["properties"]["status"]["properties"]
    assert "phase" not in status
    assert status["conditions"]["x-kubernetes-list-type"] == "map"
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert set(status["conditions"]["items"]["required"]) >= {"type", "status", "reason", "message"}


def test_names_short_name_and_status_subresource(crd):
    assert crd["spec"]["group"] == naming.GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["rrd"]
    (version,) = crd["spec"]["versions"]
    assert version["name"] == naming.VERSION
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns_show_model_backend_readiness_replicas_slo_p95_and_age(crd, schema):
    (version,) = crd["spec"]["versions"]
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert {"Model", "Backend", "Ready", "Replicas", "SLO-ms", "P95-ms", "Age"} <= set(columns)
    assert columns["SLO-Met"] == '.status.conditions[?(@.type=="SLOMet")].status'
    assert columns["Model-Ready"] == '.status.conditions[?(@.type=="ModelReady")].status'
    for name, json_path in columns.items():
        if name in {"Age", "Ready", "SLO-Met", "Model-Ready"}:
            continue
        node = schema
        for part in json_path.strip(".").split("."):
            node = node["properties"][part]
        assert node["type"] in {"string", "integer"}, name


def test_upstream_shapes_come_from_the_kubernetes_schemas(schema):
    spec = schema["properties"]["spec"]["properties"]
    definitions = upstream.load_definitions()
    toleration = upstream.structural("io.k8s.api.core.v1.Toleration", definitions)
    assert spec["podTemplate"]["properties"]["tolerations"]["items"] == toleration
    limits = spec["resources"]["properties"]["limits"]["additionalProperties"]
    assert limits["x-kubernetes-int-or-string"] is True
    assert limits["pattern"] == upstream.QUANTITY_PATTERN


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_every_example_is_admitted_by_the_crd(schema, path):
    defaulted, errors = admit(schema, load_yaml(path))
    assert errors == []
    assert defaulted["spec"]["replicas"]["min"] >= 1  # defaults were applied before CEL ran


@pytest.mark.parametrize("cr", static_crs("edge-specs.yaml"), ids=lambda cr: cr["metadata"]["name"])
def test_specs_at_the_edges_are_admitted(schema, cr):
    assert admit(schema, cr)[1] == []


@pytest.mark.parametrize("cr", static_crs("invalid-specs.yaml"), ids=lambda cr: cr["metadata"]["name"])
def test_invalid_specs_are_rejected_with_a_message_that_says_what_to_fix(schema, cr):
    expected = cr["metadata"]["annotations"][EXPECTED_ERROR]
    _, errors = admit(schema, cr)
    assert len(errors) == 1, errors
    assert expected in errors[0]
    assert re.search(r": (raise|lower|set|remove|use|choose|install)|: .*(instead|one of them)", errors[0])


@pytest.mark.parametrize(
    "cr",
    static_crs("invalid-specs.yaml") + static_crs("edge-specs.yaml"),
    ids=lambda cr: cr["metadata"]["name"],
)
def test_the_operator_and_the_api_server_agree_on_every_spec(schema, cr):
    _, server_errors = admit(schema, cr)
    try:
        api.check_name(cr["metadata"]["name"])
        api.parse_spec(cr["spec"])
        operator_errors = []
    except ValueError as exc:
        operator_errors = [str(exc)]
    assert bool(server_errors) == bool(operator_errors)
    if server_errors:
        message = server_errors[0].split(": ", 1)[1]
        assert message in operator_errors[0]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"model": {"id": "m", "maxLength": 9000}}, "maxLength"),
        ({"model": {"id": "m"}, "latencySLO": {"p95Milliseconds": 0}}, "p95Milliseconds"),
        ({"model": {"id": "m"}, "backend": "tpu"}, "backend"),
        ({"model": {"id": "m"}, "maxCandidates": 5000}, "maxCandidates"),
        ({"model": {"id": ""}}, "id"),
        ({"backend": "cpu"}, "model"),
        (
            {
                "model": {"id": "m"},
                "networkPolicy": {"allowFrom": [{"podSelector": {"matchLabels": {"app": "-x"}}}]},
            },
            "matchLabels",
        ),
        ({"model": {"id": "m"}, "auth": {"secretName": "keys", "key": "a/b"}}, "key"),
    ],
)
def test_out_of_range_fields_are_rejected_by_schema_and_operator_alike(schema, spec, field):
    cr = {"apiVersion": naming.API_VERSION, "kind": naming.KIND, "metadata": {"name": "x"}, "spec": spec}
    _, errors = admit(schema, cr)
    assert errors
    assert field in " ".join(errors)
    with pytest.raises(api.InvalidSpecError, match=field):
        api.parse_spec(spec)
