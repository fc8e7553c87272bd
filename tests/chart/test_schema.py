"""values.schema.json: wrong values fail the install with a message naming the key; values.yaml and the
schema describe the same keys, every one of them documented, and unknown keys are refused everywhere."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from tests.chart.rendering import CHART, HelmError, render

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
# Objects whose contents another schema owns: the CRD validates the example's spec (the chart schema
# lists only the fields values.yaml sets), Kubernetes validates valueFrom and affinity terms.
OPEN_BY_DESIGN = {
    "example.spec",
    "example.spec.model",
    "example.spec.latencySLO",
    "example.spec.replicas",
    "operator.extraEnv[].valueFrom",
    "operator.affinity.nodeAffinity",
    "operator.affinity.podAffinity",
    "operator.affinity.podAntiAffinity",
}

# Keys the schema accepts that values.yaml leaves unset on purpose: parts of Kubernetes shapes.
UNSET_BY_DEFAULT = {
    "operator.resources.requests.ephemeral-storage",
    "operator.resources.limits.cpu",
    "operator.resources.limits.ephemeral-storage",
    "operator.affinity.nodeAffinity",
    "operator.affinity.podAffinity",
    "operator.affinity.podAntiAffinity",
}


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref, keeping the referring node's own description."""
    if "$ref" in node:
        target = SCHEMA
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def schema_nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, resolved schema) for every property and array item, depth first."""
    node = resolve(node)
    for key, child in node.get("properties", {}).items():
        child_path = f"{path}.{key}" if path else key
        yield child_path, resolve(child)
        yield from schema_nodes(child, child_path)
    if isinstance(node.get("items"), dict):
        yield f"{path}[]", resolve(node["items"])
        yield from schema_nodes(node["items"], f"{path}[]")


def value_paths(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, child in node.items():
            child_path = f"{path}.{key}" if path else key
            yield child_path
            yield from value_paths(child, child_path)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("operator.replicas=0", "at '/operator/replicas': minimum: got 0, want 1"),
        ("operator.replicas=two", "at '/operator/replicas': got string, want integer"),
        ("operator.logFormat=xml", "at '/operator/logFormat': value must be one of 'text', 'json'"),
        ("operator.image.pullPolicy=Sometimes", "at '/operator/image/pullPolicy': value must be one of"),
        ("operatr.replicas=2", "additional properties 'operatr' not allowed"),
        ("operator.replica=2", "at '/operator': additional properties 'replica' not allowed"),
        ("watchNamespaces[0]=Search_NS", "at '/watchNamespaces/0': 'Search_NS' does not match pattern"),
        ("serviceMonitor.interval=30", "at '/serviceMonitor/interval': got number, want string"),
        ("serviceMonitor.metricsPort=8080", "at '/serviceMonitor/metricsPort'"),
        ("example.spec.backend=tpu", "at '/example/spec/backend': value must be one of 'cpu', 'gpu'"),
        ("helmTest.timeoutSeconds=1", "at '/helmTest/timeoutSeconds': minimum: got 1, want 10"),
        ("operator.resources.requests.cpu=lots", "at '/operator/resources/requests/cpu'"),
        ("operator.prometheusUrl=prometheus:9090", "at '/operator/prometheusUrl'"),
        ("operator.tolerations[0].effect=NoRun", "at '/operator/tolerations/0/effect'"),
    ],
)
def test_invalid_values_are_rejected_with_a_message_naming_the_key(setting: str, message: str) -> None:
    with pytest.raises(HelmError) as failure:
        render(settings=(setting,))
    assert "values don't meet the specifications of the schema" in str(failure.value)
    assert message in str(failure.value)


def test_default_values_satisfy_the_schema_in_a_second_validator() -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)


def test_the_schema_is_valid_draft_07() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_every_values_key_is_declared_in_the_schema() -> None:
    declared = {path for path, _ in schema_nodes(SCHEMA)}
    undeclared = [p for p in value_paths(VALUES) if p not in declared and not p.startswith("example.spec.")]
    assert undeclared == []


def test_every_schema_property_is_in_values_yaml_or_an_optional_part_of_an_upstream_shape() -> None:
    in_values = set(value_paths(VALUES))
    phantom = {p for p, _ in schema_nodes(SCHEMA) if "[]" not in p and p not in in_values}
    assert phantom == UNSET_BY_DEFAULT


def test_every_schema_node_is_described() -> None:
    assert SCHEMA["description"]
    undescribed = [path for path, node in schema_nodes(SCHEMA) if not node.get("description")]
    assert undescribed == []


def test_every_object_refuses_unknown_keys_except_those_another_schema_owns() -> None:
    assert SCHEMA["additionalProperties"] is False
    open_objects = {
        path
        for path, node in schema_nodes(SCHEMA)
        if node.get("type") == "object"
        and node.get("additionalProperties") is not False
        and not isinstance(node.get("additionalProperties"), dict)
    }
    assert open_objects == OPEN_BY_DESIGN


def test_string_maps_accept_only_string_values() -> None:
    with pytest.raises(HelmError, match=re.escape("at '/operator/podLabels/team'")):
        render(settings=("operator.podLabels.team=7",))
