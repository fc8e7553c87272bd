"""The chart's RBAC grants exactly what the operator declares it calls, in every deployment mode.

reranker_operator.permissions is the declaration (the operator's kmock tests prove its real calls are
covered by it); here the rendered Roles and ClusterRoles are compared with it as sets of
(apiGroup, resource, verb): everything needed, nothing more, at the right scope.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

from tests.chart.rendering import CHART, CI_VALUES, kn, render, template_text

try:
    from reranker_operator import permissions
except ImportError as exc:  # the operator's declaration is the spec: without it this whole file fails
    raise ImportError(f"reranker_operator.permissions is needed to check the chart's RBAC: {exc}") from exc

Grant = tuple[str, str, str]
VALUES_FILES = [None, *CI_VALUES]


def _values_id(values_file: Path | None) -> str:
    return "defaults" if values_file is None else values_file.stem


def grants_of_rules(rules: Iterable[dict]) -> set[Grant]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def grants_of_permissions(declared: Iterable[permissions.Permission]) -> set[Grant]:
    return {(p.api_group, p.resource, verb) for p in declared for verb in p.verbs}


def mode_of(values_file: Path | None) -> tuple[list[str], bool]:
    """(watched namespaces, peering) that a values file selects."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    if values_file is not None:
        override = yaml.safe_load(values_file.read_text())
        values["watchNamespaces"] = override.get("watchNamespaces", values["watchNamespaces"])
        values["operator"]["replicas"] = override.get("operator", {}).get("replicas", 1)
    return values["watchNamespaces"], values["operator"]["replicas"] > 1


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=_values_id)
def test_rendered_rules_grant_exactly_the_declared_permissions(values_file: Path | None) -> None:
    objects = render(*(() if values_file is None else (values_file,)))
    watched, peering = mode_of(values_file)
    declared = permissions.required(clusterwide=not watched, peering=peering)
    cluster_roles = [o for o in objects if o["kind"] == "ClusterRole"]
    roles = [o for o in objects if o["kind"] == "Role"]
    assert len(cluster_roles) == 1, [kn(o) for o in cluster_roles]
    if not watched:
        assert roles == []
        assert grants_of_rules(cluster_roles[0]["rules"]) == grants_of_permissions(declared)
        return
    cluster_scoped = [p for p in declared if p.scope == "cluster"]
    namespaced = [p for p in declared if p.scope == "namespaced"]
    assert grants_of_rules(cluster_roles[0]["rules"]) == grants_of_permissions(cluster_scoped)
    assert sorted(role["metadata"]["namespace"] for role in roles) == sorted(watched)
    for role in roles:
        assert grants_of_rules(role["rules"]) == grants_of_permissions(namespaced), kn(role)


def test_peering_rights_follow_the_watching_mode() -> None:
    cluster_wide = grants_of_rules(
        next(o for o in render(CI_VALUES[2]) if o["kind"] == "ClusterRole")["rules"]
    )
    assert ("kopf.dev", "clusterkopfpeerings", "patch") in cluster_wide
    assert not any(resource == "kopfpeerings" for _, resource, _ in cluster_wide)


def test_every_declared_permission_is_granted_somewhere_in_some_mode() -> None:
    """No declaration is dead: each one is rendered by at least one ci/ values file."""
    rendered: set[Grant] = set()
    for values_file in CI_VALUES:
        for obj in render(values_file):
            if obj["kind"] in ("Role", "ClusterRole"):
                rendered |= grants_of_rules(obj["rules"])
    assert grants_of_permissions(permissions.PERMISSIONS) <= rendered


def test_rules_sit_under_the_comment_of_their_declared_purpose() -> None:
    """`# Framework:` and `# Application:` comments in the rendered RBAC match permissions.purpose."""
    text = template_text("templates/rbac.yaml", CI_VALUES[2])
    purpose_by_grant: dict[tuple[str, str], str] = {}
    current = None
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if comment := re.match(r"\s*# (Framework|Application):", line):
            current = comment.group(1).lower()
        elif group := re.match(r"\s*- apiGroups: \[(.*)\]", line):
            resource = re.match(r"\s*resources: \[(.*)\]", lines[index + 1])
            assert resource, lines[index + 1]
            purpose_by_grant[(group.group(1).strip('"'), resource.group(1))] = current
    declared = {
        (p.api_group, p.resource): p.purpose for p in permissions.required(clusterwide=True, peering=True)
    }
    assert purpose_by_grant == declared
