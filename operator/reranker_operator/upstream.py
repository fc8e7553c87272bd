"""Official Kubernetes schemas for the upstream shapes the CRD embeds (resources, tolerations, ...).

The definitions are copied verbatim from kubernetes-validate's strict JSON schemas into a small
vendored file, because that package (100+ MB of schemas) belongs in the test environment, not
in the operator image. A test fails when the vendored copy drifts from the package; refresh it
with `python -m reranker_operator.upstream`.

The CRD follows the OLDEST Kubernetes version the project supports: a field that only newer
clusters know would be accepted by the CRD and then rejected or dropped by an older API server.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

KUBERNETES_VERSION: Final = "1.29.0"
VENDORED: Final = Path(__file__).with_name("kubernetes-1.29-definitions.json")
QUANTITY: Final = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING: Final = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
# The pattern controller-gen puts on every Quantity, so `kubectl apply` rejects "2 cores" early.
QUANTITY_PATTERN: Final = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# Keys a CRD's JSONSchemaProps understands; anything else (patch strategies, $id, ...) is dropped.
KEPT_KEYS: Final = frozenset(
    {
        "description",
        "type",
        "format",
        "properties",
        "items",
        "required",
        "enum",
        "default",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "pattern",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
    }
)


class UpstreamSchemaError(ValueError):
    """An upstream definition cannot be expressed as a structural CRD schema."""


def load_definitions(path: Path = VENDORED) -> dict[str, Any]:
    return json.loads(path.read_text())["definitions"]


def extract(roots: Iterable[str], version: str = KUBERNETES_VERSION) -> dict[str, Any]:
    """The definitions reachable from `roots`, read from kubernetes-validate (a dev dependency)."""
    from importlib.resources import files

    source = (
        files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{version}-local-strict"
        / "_definitions.json"
    )
    everything = json.loads(source.read_text())["$defs"]
    wanted: dict[str, Any] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted[name] = everything[name]
        pending.extend(_references(everything[name]))
    return {"kubernetesVersion": version, "definitions": dict(sorted(wanted.items()))}


def _references(node: Any) -> Iterable[str]:
    if isinstance(node, Mapping):
        if "$ref" in node:
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def structural(name: str, definitions: Mapping[str, Any]) -> dict[str, Any]:
    """Inline `name` into a structural CRD schema: single types, no refs, int-or-string markers."""
    return _convert(definitions[name], name, definitions, trail=(name,))


def _convert(
    node: Mapping[str, Any], name: str | None, definitions: Mapping[str, Any], trail: tuple[str, ...]
) -> dict:
    if "$ref" in node:
        target = node["$ref"].rsplit("/", 1)[-1]
        if target in trail:
            raise UpstreamSchemaError(f"{' -> '.join((*trail, target))} is recursive; a CRD cannot inline it")
        converted = _convert(definitions[target], target, definitions, (*trail, target))
        if "description" in node:
            converted["description"] = node["description"]
        return converted
    if "oneOf" in node:
        return _int_or_string(node, name)
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key not in KEPT_KEYS:
            continue
        if key == "type":
            result["type"] = _single_type(value, trail)
        elif key == "properties":
            result["properties"] = {
                prop: _convert(schema, None, definitions, trail) for prop, schema in value.items()
            }
        elif key == "items":
            result["items"] = _convert(value, None, definitions, trail)
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(node.get("additionalProperties"), Mapping):
        result["additionalProperties"] = _convert(node["additionalProperties"], None, definitions, trail)
    _check_list_map_keys(result, trail)
    return result


def _single_type(value: str | list[str], trail: tuple[str, ...]) -> str:
    types = [value] if isinstance(value, str) else [item for item in value if item != "null"]
    if len(types) != 1:
        raise UpstreamSchemaError(
            f"{'.'.join(trail)} has types {types}; a structural schema needs exactly one"
        )
    return types[0]


def _int_or_string(node: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if "description" in node:
        result["description"] = node["description"]
    result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if name == QUANTITY:
        result["pattern"] = QUANTITY_PATTERN
    result["x-kubernetes-int-or-string"] = True
    return result


def _check_list_map_keys(schema: Mapping[str, Any], trail: tuple[str, ...]) -> None:
    """A map-type list needs its keys required (or defaulted), or the API server rejects the CRD."""
    keys = schema.get("x-kubernetes-list-map-keys")
    if not keys:
        return
    item = schema.get("items", {})
    required = set(item.get("required", ()))
    missing = [
        key
        for key in keys
        if key not in required and "default" not in item.get("properties", {}).get(key, {})
    ]
    if missing:
        raise UpstreamSchemaError(
            f"{'.'.join(trail)}: list-map keys {missing} are neither required nor defaulted"
        )


def main() -> None:
    """Refresh the vendored definitions from the installed kubernetes-validate."""
    from reranker_operator import crdgen  # imported here: crdgen imports this module

    vendored = extract(crdgen.upstream_definition_names())
    VENDORED.write_text(json.dumps(vendored, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(vendored['definitions'])} definitions to {VENDORED}")


if __name__ == "__main__":
    main()
