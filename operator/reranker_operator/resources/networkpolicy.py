"""NetworkPolicies: who may call a reranker, who may scrape it, and where its pods may connect.

Deny by default, then allow what the product needs: callers (this namespace unless the spec says
otherwise) on the http port, the monitoring namespace on the metrics port, DNS, and the ports model
preparation downloads from. The server pods of a shared cache need no egress but DNS: their Job
prepared the model. A pod that prepares its own model (initContainer) gets the preparation's egress,
because a NetworkPolicy applies to the whole pod.
"""

from __future__ import annotations

from typing import Any, Final

from reranker_operator import naming
from reranker_operator.api import NetworkPeer, RerankerDeploymentSpec
from reranker_operator.resources.common import ChildRef, metadata

DNS_PORT: Final = 53
#: DNS answers from the cluster's resolver, wherever it runs (kube-system, node-local caches).
DNS_EGRESS: Final = {"ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]}


def peer(allowed: NetworkPeer) -> dict[str, Any]:
    """The peer as Kubernetes spells it; empty selector parts are left out (`{}` still selects all)."""
    return allowed.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)


def preparation_egress(spec: RerankerDeploymentSpec) -> list[dict[str, Any]]:
    ports = [{"protocol": "TCP", "port": port} for port in spec.network_policy.preparation_egress_ports]
    return [dict(DNS_EGRESS), *([{"ports": ports}] if ports else [])]


def build_server_policy(
    spec: RerankerDeploymentSpec, ref: ChildRef, *, prepares_in_pod: bool
) -> dict[str, Any]:
    """The server pods' policy; `prepares_in_pod` when their initContainer downloads the model."""
    policy = spec.network_policy
    callers = [peer(item) for item in policy.allow_from] or [{"podSelector": {}}]
    ingress = [
        {"from": callers, "ports": [{"protocol": "TCP", "port": naming.HTTP_PORT_NAME}]},
        {
            "from": [peer(item) for item in policy.metrics_from],
            "ports": [{"protocol": "TCP", "port": naming.METRICS_PORT_NAME}],
        },
    ]
    egress = preparation_egress(spec) if prepares_in_pod else [dict(DNS_EGRESS)]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ref),
        "spec": {
            "podSelector": {"matchLabels": naming.selector_labels(ref.cr_name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [rule for rule in ingress if rule["from"]],
            "egress": egress,
        },
    }


def build_preparation_policy(spec: RerankerDeploymentSpec, job: dict[str, Any]) -> dict[str, Any]:
    """The preparation Job's pods take no connections and reach only DNS and the download ports."""
    meta = job["metadata"]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": dict(meta["labels"])},
        "spec": {
            "podSelector": {"matchLabels": dict(job["spec"]["template"]["metadata"]["labels"])},
            # Ingress listed with no rule denies every connection; an empty `ingress: []` would read back
            # as absent (omitempty) and look like drift on every reconcile.
            "policyTypes": ["Ingress", "Egress"],
            "egress": preparation_egress(spec),
        },
    }
