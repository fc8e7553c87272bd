"""What the API server does with a RerankerDeployment, done in tests: default, validate, run CEL.

The API server applies the CRD's structural defaults, validates the object against the
openAPIV3Schema and evaluates the `x-kubernetes-validations` CEL rules. These helpers do the
same with jsonschema and cel-python, so examples and static CRs are checked against the very
CRD file that ships, not against the Python models that generated it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import celpy
import jsonschema


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """Structural defaulting: fill absent properties that have a default, recursively."""
    if isinstance(value, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                value[name] = apply_defaults(prop, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for name in list(value):
                value[name] = apply_defaults(extra, value[name])
    elif isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def strict_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The CRD schema for jsonschema, rejecting unknown fields (the API server would silently prune them)."""
    result = {key: value for key, value in schema.items() if not key.startswith("x-kubernetes")}
    if "properties" in result:
        result["properties"] = {name: strict_json_schema(prop) for name, prop in result["properties"].items()}
        if schema.get("type") == "object" and "additionalProperties" not in schema:
            result["additionalProperties"] = False
    if isinstance(result.get("additionalProperties"), Mapping):
        result["additionalProperties"] = strict_json_schema(result["additionalProperties"])
    if "items" in result:
        result["items"] = strict_json_schema(result["items"])
    return result


def schema_errors(schema: Mapping[str, Any], obj: Mapping[str, Any]) -> list[str]:
    """Schema violations, as `path: message`; `metadata` is free-form like in any CRD."""
    validator = jsonschema.Draft7Validator(strict_json_schema(schema))
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(obj)
    ]


def cel_rules(
    schema: Mapping[str, Any], value: Any, path: str = ""
) -> Iterator[tuple[str, dict[str, str], Any]]:
    """(path, rule, self) for every CEL rule whose node is present in `value`."""
    for rule in schema.get("x-kubernetes-validations") or ():
        yield path, rule, value
    if isinstance(value, Mapping):
        for name, prop in (schema.get("properties") or {}).items():
            if name in value:
                yield from cel_rules(prop, value[name], f"{path}.{name}" if path else name)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from cel_rules(schema["items"], item, f"{path}[{index}]")


def cel_errors(schema: Mapping[str, Any], obj: Mapping[str, Any]) -> list[str]:
    """The messages of the CEL rules the (defaulted) object violates."""
    environment = celpy.Environment()
    failed = []
    for path, rule, node in cel_rules(schema, obj):
        program = environment.program(environment.compile(rule["rule"]))
        if not bool(program.evaluate({"self": celpy.json_to_cel(node)})):
            failed.append(f"{path or '<root>'}: {rule['message']}")
    return failed


def admit(schema: Mapping[str, Any], obj: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What `kubectl apply` would get: the defaulted object and every error message."""
    defaulted = apply_defaults(schema, copy.deepcopy(dict(obj)))
    errors = schema_errors(schema, defaulted)
    return defaulted, errors or cel_errors(schema, defaulted)
