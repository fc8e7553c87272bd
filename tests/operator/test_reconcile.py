"""Desired-versus-actual comparison: what counts as drift and what is the API server's business."""

from __future__ import annotations

from reranker_operator.reconcile import is_owned_by, owned_fields_match

DESIRED = {
    "metadata": {"name": "rr", "labels": {"a": "1"}},
    "spec": {
        "template": {"spec": {"containers": [{"name": "c", "env": [{"name": "X", "value": "1"}]}]}},
        "resources": {"limits": {"cpu": "2", "memory": "4096Mi"}},
        "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "4096Mi"}}],
    },
}


def stored(**changes):
    """DESIRED as the API server returns it: defaults added, quantities canonical."""
    obj = {
        "metadata": {"name": "rr", "labels": {"a": "1", "b": "2"}, "uid": "u", "resourceVersion": "9"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "env": [{"name": "X", "value": "1"}],
                            "terminationMessagePath": "/dev/termination-log",
                        }
                    ],
                    "dnsPolicy": "ClusterFirst",
                }
            },
            "resources": {"limits": {"cpu": "2", "memory": "4Gi"}},
            "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "4Gi"}}],
            "replicas": 5,
        },
        "status": {"readyReplicas": 5},
    }
    obj["spec"].update(changes)
    return obj


def test_fields_added_by_the_server_or_other_controllers_are_not_drift():
    assert owned_fields_match(DESIRED, stored())


def test_a_changed_owned_value_is_drift():
    changed = stored()
    changed["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "2"
    assert not owned_fields_match(DESIRED, changed)


def test_a_missing_list_item_is_drift():
    assert not owned_fields_match(DESIRED, stored(volumes=[]))


def test_quantities_are_compared_by_value_only_where_they_are_quantities():
    assert not owned_fields_match(DESIRED, stored(resources={"limits": {"cpu": "3", "memory": "4Gi"}}))
    assert owned_fields_match({"spec": {"x": "2000m"}}, {"spec": {"x": "2000m"}})
    assert not owned_fields_match({"spec": {"x": "2000m"}}, {"spec": {"x": "2"}})


def test_ownership_is_by_uid():
    child = {"metadata": {"ownerReferences": [{"uid": "abc"}]}}
    assert is_owned_by(child, "abc")
    assert not is_owned_by(child, "other")
    assert not is_owned_by({"metadata": {}}, "abc")
