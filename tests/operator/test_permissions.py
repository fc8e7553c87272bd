"""The declared RBAC needs: complete for every kind the operator touches, minimal, renderable."""

from __future__ import annotations

from reranker_operator import api, kinds, naming, permissions
from reranker_operator.config import OperatorConfig
from reranker_operator.plan import Capabilities, owned, plan_children
from reranker_operator.resources.common import ChildRef


def test_every_child_kind_can_be_read_created_and_patched():
    declared = permissions.required(clusterwide=True, peering=False)
    for resource in kinds.CHILDREN:
        for verb in ("get", "create", "patch"):
            assert permissions.covers(declared, resource.group, resource.plural, verb), (
                resource.plural,
                verb,
            )


def test_only_children_that_can_be_unplanned_may_be_deleted():
    declared = permissions.required(clusterwide=True, peering=False)
    deletable = {p.resource for p in declared if "delete" in p.verbs}
    assert deletable == {resource.plural for resource in kinds.PRUNABLE}


def test_no_wildcards_and_every_permission_has_a_reason():
    for permission in permissions.PERMISSIONS:
        assert "*" not in permission.verbs
        assert "*" not in permission.resource
        assert permission.reason


def test_peering_permissions_follow_the_watching_mode():
    def peering_resources(**mode):
        return {p.resource for p in permissions.required(**mode) if p.api_group == "kopf.dev"}

    assert peering_resources(clusterwide=True, peering=False) == set()
    assert peering_resources(clusterwide=True, peering=True) == {"clusterkopfpeerings"}
    assert peering_resources(clusterwide=False, peering=True) == {"kopfpeerings"}


def test_cluster_scoped_needs_are_marked_for_a_clusterrole():
    cluster_scoped = {p.resource for p in permissions.PERMISSIONS if p.scope == "cluster"}
    assert cluster_scoped == {"customresourcedefinitions", "namespaces", "clusterkopfpeerings"}


def test_rbac_rules_render_one_rule_per_resource():
    rules = permissions.rbac_rules(permissions.required(clusterwide=True, peering=False))
    assert {
        "apiGroups": ["kube-reranker.io"],
        "resources": ["rerankerdeployments/status"],
        "verbs": ["patch"],
    } in rules
    assert all(len(rule["resources"]) == 1 for rule in rules)


def test_owner_references_that_block_deletion_are_allowed_where_admission_enforces_them():
    cr = {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {"name": "minilm", "namespace": "search", "uid": "9f0c"},
    }
    spec = api.parse_spec({"model": {"id": "org/model"}})
    children = owned(
        plan_children(spec, ChildRef("minilm", "search"), OperatorConfig(), Capabilities()).children, cr
    )
    assert all(child["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] for child in children)
    # OwnerReferencesPermissionEnforcement admits blockOwnerDeletion only with update on the finalizers.
    declared = permissions.required(clusterwide=True, peering=False)
    assert permissions.covers(declared, "kube-reranker.io", "rerankerdeployments/finalizers", "update")
