"""The Kubernetes resources the operator reads or writes, and their URL paths.

The client builds every URL from these, and permissions.py declares RBAC against the same
objects, so a kind cannot be used without its permission being declared next to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from reranker_operator import naming


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        parts = [self.group_version_path]
        if self.namespaced and namespace is not None:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name is not None:
            parts.append(name)
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)


RERANKER: Final = ApiResource(naming.GROUP, naming.VERSION, naming.PLURAL, naming.KIND)
DEPLOYMENT: Final = ApiResource("apps", "v1", "deployments", "Deployment")
SERVICE: Final = ApiResource("", "v1", "services", "Service")
HPA: Final = ApiResource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
PDB: Final = ApiResource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
SERVICE_MONITOR: Final = ApiResource("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor")
PROMETHEUS_RULE: Final = ApiResource("monitoring.coreos.com", "v1", "prometheusrules", "PrometheusRule")
SCALED_OBJECT: Final = ApiResource("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject")
POD: Final = ApiResource("", "v1", "pods", "Pod")
JOB: Final = ApiResource("batch", "v1", "jobs", "Job")
PVC: Final = ApiResource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
NETWORK_POLICY: Final = ApiResource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
EVENT: Final = ApiResource("", "v1", "events", "Event")
NAMESPACE: Final = ApiResource("", "v1", "namespaces", "Namespace", namespaced=False)
CRD: Final = ApiResource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)
KOPF_PEERING: Final = ApiResource("kopf.dev", "v1", "kopfpeerings", "KopfPeering")
CLUSTER_KOPF_PEERING: Final = ApiResource(
    "kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering", False
)

# Every kind the operator may create for a RerankerDeployment.
CHILDREN: Final = (
    DEPLOYMENT,
    SERVICE,
    HPA,
    PDB,
    NETWORK_POLICY,
    SERVICE_MONITOR,
    PROMETHEUS_RULE,
    SCALED_OBJECT,
)
# Children that exist only in some plans, so a reconcile may have to delete them again.
PRUNABLE: Final = (HPA, PDB, NETWORK_POLICY, SERVICE_MONITOR, PROMETHEUS_RULE, SCALED_OBJECT)
# Shared by the RerankerDeployments that prepare one recipe into one claim: never pruned by one of them
# (the preparation Job's NetworkPolicy, a NETWORK_POLICY, is shared the same way).
SHARED: Final = (JOB, PVC)
# Shared kinds whose spec follows the last user reconciled; a Job's template is immutable and a claim's
# size is the user's to grow, so those are created once and never changed.
SHARED_SPEC_FOLLOWS: Final = (NETWORK_POLICY,)
# Children whose API comes from a CRD that may or may not be installed.
OPTIONAL: Final = (SERVICE_MONITOR, PROMETHEUS_RULE, SCALED_OBJECT)


def of(obj: Mapping[str, Any]) -> ApiResource:
    """The resource of a manifest, by its apiVersion and kind."""
    for resource in (*CHILDREN, *SHARED, RERANKER):
        if resource.api_version == obj["apiVersion"] and resource.kind == obj["kind"]:
            return resource
    raise KeyError(f"{obj['apiVersion']} {obj['kind']} is not a kind the operator manages")
