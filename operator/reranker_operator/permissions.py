"""Every Kubernetes permission the operator needs, with the reason, in one declaration.

The Helm chart renders its RBAC from this list (and a chart test checks they are equal); the
operator's kmock loop tests record every request the operator really makes and fail when
one is not covered here, so the declaration cannot rot in either direction unnoticed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from reranker_operator import kinds
from reranker_operator.kinds import ApiResource

When = Literal["always", "peering-clusterwide", "peering-namespaced"]


@dataclass(frozen=True)
class Permission:
    api_group: str
    resource: str
    verbs: tuple[str, ...]
    purpose: Literal["framework", "application"]
    reason: str
    # cluster: a cluster-scoped resource, granted by a ClusterRole even when watching namespaces.
    scope: Literal["cluster", "namespaced"] = "namespaced"
    # peering-clusterwide / peering-namespaced: only with a peering name, in that watching mode.
    when: When = "always"


def _permission(
    resource: ApiResource,
    verbs: str,
    purpose: Literal["framework", "application"],
    reason: str,
    *,
    subresource: str = "",
    when: When = "always",
) -> Permission:
    return Permission(
        api_group=resource.group,
        resource=f"{resource.plural}/{subresource}" if subresource else resource.plural,
        verbs=tuple(verbs.split()),
        purpose=purpose,
        reason=reason,
        scope="namespaced" if resource.namespaced else "cluster",
        when=when,
    )


PERMISSIONS: Final[tuple[Permission, ...]] = (
    _permission(kinds.CRD, "list watch", "framework", "kopf notices CRDs installed or removed at runtime"),
    _permission(
        kinds.NAMESPACE, "list watch", "framework", "kopf follows namespaces appearing and disappearing"
    ),
    _permission(
        kinds.EVENT, "create", "framework", "kopf and the operator post Events on the RerankerDeployment"
    ),
    _permission(
        kinds.CLUSTER_KOPF_PEERING,
        "list watch patch",
        "framework",
        "cluster-wide replicas agree which one is active",
        when="peering-clusterwide",
    ),
    _permission(
        kinds.KOPF_PEERING,
        "list watch patch",
        "framework",
        "namespaced replicas agree which one is active",
        when="peering-namespaced",
    ),
    _permission(
        kinds.RERANKER,
        "get list watch patch",
        "application",
        "watch RerankerDeployments, keep kopf's progress annotations, read one when its Deployment changes",
    ),
    _permission(
        kinds.RERANKER, "patch", "application", "write status.conditions and replicas", subresource="status"
    ),
    _permission(
        kinds.RERANKER,
        "update",
        "application",
        "children's owner references block the owner's deletion (blockOwnerDeletion), which the "
        "OwnerReferencesPermissionEnforcement admission plugin only allows with update on finalizers",
        subresource="finalizers",
    ),
    _permission(
        kinds.DEPLOYMENT,
        "get list watch create patch",
        "application",
        "run the server pods and follow their rollout",
    ),
    _permission(
        kinds.POD,
        "list watch",
        "application",
        "explain pods that cannot be scheduled, pull the image or start",
    ),
    _permission(kinds.SERVICE, "get create patch", "application", "expose the http and metrics ports"),
    _permission(
        kinds.JOB,
        "get list create patch",
        "application",
        "prepare each model recipe once; patch adds a second user as an owner",
    ),
    _permission(
        kinds.PVC, "get create patch", "application", "create the shared model cache for a storage class"
    ),
    _permission(
        kinds.HPA, "get list create patch delete", "application", "autoscale on P95 via prometheus-adapter"
    ),
    _permission(
        kinds.PDB, "get list create patch delete", "application", "keep warmed-up replicas during drains"
    ),
    _permission(
        kinds.NETWORK_POLICY,
        "get list create patch delete",
        "application",
        "let only the allowed callers and the monitoring namespace reach the pods",
    ),
    _permission(
        kinds.SERVICE_MONITOR,
        "get list create patch delete",
        "application",
        "let the Prometheus Operator scrape",
    ),
    _permission(
        kinds.PROMETHEUS_RULE,
        "get list create patch delete",
        "application",
        "alert on the SLO and pod health",
    ),
    _permission(
        kinds.SCALED_OBJECT, "get list create patch delete", "application", "autoscale on P95 via KEDA"
    ),
)


def required(*, clusterwide: bool, peering: bool) -> tuple[Permission, ...]:
    """The permissions of one deployment mode: peering rules only with peering, for the right scope."""
    wanted = {"always"}
    if peering:
        wanted.add("peering-clusterwide" if clusterwide else "peering-namespaced")
    return tuple(permission for permission in PERMISSIONS if permission.when in wanted)


def covers(permissions: Iterable[Permission], api_group: str, resource: str, verb: str) -> bool:
    return any(p.api_group == api_group and p.resource == resource and verb in p.verbs for p in permissions)


def rbac_rules(permissions: Iterable[Permission]) -> list[dict[str, list[str]]]:
    """RBAC PolicyRules, one per (group, resource), in declaration order."""
    return [
        {"apiGroups": [p.api_group], "resources": [p.resource], "verbs": list(p.verbs)} for p in permissions
    ]
