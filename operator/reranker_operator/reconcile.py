"""Desired versus actual: apply the planned children idempotently and remove those no longer planned.

A child is written only when a field the operator sets differs from the stored object, so a
reconcile with nothing changed makes no write (resyncs and restarts are free). Fields the
API server or other controllers add (defaults, the HPA's replica count) are not ours and are
never compared. Deletion of the whole RerankerDeployment is left to Kubernetes' garbage
collector through the ownerReferences.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from reranker_operator import kinds, naming
from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.client import KubeClient
from reranker_operator.config import OperatorConfig
from reranker_operator.plan import Capabilities, Plan, owned, plan_children
from reranker_operator.preparing import PreparationState, observe_job
from reranker_operator.resources.common import ChildRef
from reranker_operator.resources.preparation import keeping
from reranker_operator.resources.quantity import same_value

# The Job controller labels a Job's pods with its name.
JOB_NAME_LABEL: Final = "job-name"
# Keys whose values are quantities that the API server rewrites into canonical form.
QUANTITY_PARENTS: Final = frozenset({"limits", "requests"})
QUANTITY_KEYS: Final = frozenset({"sizeLimit"})


@dataclass(frozen=True)
class Change:
    action: Literal["created", "updated", "deleted", "shared"]
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.name}"


@dataclass(frozen=True)
class Observed:
    """The server Deployment and its pods, as the API server reports them."""

    deployment: dict[str, Any] | None
    pods: list[dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    changes: tuple[Change, ...]
    observed: Observed
    #: The preparation Job's state; None when each pod prepares the model itself (no shared cache).
    preparation: PreparationState | None = None


class ChildConflictError(Exception):
    """A child's name is taken by an object this RerankerDeployment does not own."""


def owned_fields_match(desired: Any, actual: Any, key: str = "", parent: str = "") -> bool:
    """True when every field in `desired` has the same value in `actual` (extra fields are ignored)."""
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(
            name in actual and owned_fields_match(value, actual[name], name, key)
            for name, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(owned_fields_match(d, a, key, parent) for d, a in zip(desired, actual, strict=True))
        )
    if parent in QUANTITY_PARENTS or key in QUANTITY_KEYS:
        return desired == actual or same_value(desired, actual)
    return desired == actual


def is_owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    return any(ref.get("uid") == owner_uid for ref in obj.get("metadata", {}).get("ownerReferences") or ())


async def detect_capabilities(client: KubeClient) -> Capabilities:
    service_monitors, prometheus_rules, scaled_objects = await asyncio.gather(
        client.serves(kinds.SERVICE_MONITOR),
        client.serves(kinds.PROMETHEUS_RULE),
        client.serves(kinds.SCALED_OBJECT),
    )
    return Capabilities(service_monitors, prometheus_rules, scaled_objects)


async def apply_child(client: KubeClient, desired: dict[str, Any], owner_uid: str) -> Change | None:
    resource = kinds.of(desired)
    meta = desired["metadata"]
    actual = await client.get(resource, meta["namespace"], meta["name"])
    if actual is None:
        await client.create(resource, desired)
        return Change("created", resource.kind, meta["name"])
    if not is_owned_by(actual, owner_uid):
        raise ChildConflictError(
            f"{resource.kind} {meta['name']} already exists and does not belong to this RerankerDeployment: "
            "delete or rename that object, or rename the RerankerDeployment"
        )
    if owned_fields_match(desired, actual):
        return None
    await client.apply(resource, desired)
    return Change("updated", resource.kind, meta["name"])


async def prune(
    client: KubeClient, ref: ChildRef, owner_uid: str, keep: set[tuple[str, str]], capabilities: Capabilities
) -> list[Change]:
    """Delete children this RerankerDeployment owns but no longer plans (e.g. the PDB when min drops to 1)."""
    served = {
        kinds.HPA: True,
        kinds.PDB: True,
        kinds.NETWORK_POLICY: True,
        kinds.SERVICE_MONITOR: capabilities.service_monitors,
        kinds.PROMETHEUS_RULE: capabilities.prometheus_rules,
        kinds.SCALED_OBJECT: capabilities.scaled_objects,
    }
    changes = []
    for resource in kinds.PRUNABLE:
        if not served[resource]:
            continue
        for item in await client.list(resource, ref.namespace, naming.ownership_selector(ref.cr_name)):
            name = item["metadata"]["name"]
            if (resource.kind, name) not in keep and is_owned_by(item, owner_uid):
                await client.delete(resource, ref.namespace, name)
                changes.append(Change("deleted", resource.kind, name))
    return changes


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """A plain (non-controller) owner: shared objects are garbage-collected after their last user."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }


async def apply_shared(
    client: KubeClient, desired: dict[str, Any], owner: Mapping[str, Any]
) -> Change | None:
    """Create a shared claim, Job or Job policy once; later users add themselves to its owners.

    Kinds in `kinds.SHARED_SPEC_FOLLOWS` (the Job's NetworkPolicy) take the spec of the RerankerDeployment
    reconciled last, so a changed `networkPolicy.preparationEgressPorts` takes effect; users of one
    recipe and claim should agree on it.
    """
    resource = kinds.of(desired)
    meta = desired["metadata"]
    ours = owner_reference(owner)
    actual = await client.get(resource, meta["namespace"], meta["name"])
    if actual is None:
        if resource == kinds.JOB:
            desired = await keeping_artefacts_in_use(client, desired)
        await client.create(
            resource, {**desired, "metadata": {**desired["metadata"], "ownerReferences": [ours]}}
        )
        return Change("created", resource.kind, meta["name"])
    change = None
    if resource in kinds.SHARED_SPEC_FOLLOWS and not owned_fields_match(desired["spec"], actual.get("spec")):
        await client.merge_patch(resource, meta["namespace"], meta["name"], {"spec": desired["spec"]})
        change = Change("updated", resource.kind, meta["name"])
    owners = list(actual.get("metadata", {}).get("ownerReferences") or ())
    if any(ref.get("uid") == ours["uid"] for ref in owners):
        return change
    await client.set_owners(resource, meta["namespace"], meta["name"], [*owners, ours])
    return change or Change("shared", resource.kind, meta["name"])


async def keeping_artefacts_in_use(client: KubeClient, job: dict[str, Any]) -> dict[str, Any]:
    """A preparation Job exists while some RerankerDeployment owns it: its artefact is in use."""
    meta = job["metadata"]
    selector = {
        naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
        naming.LABEL_CLAIM: meta["labels"][naming.LABEL_CLAIM],
    }
    others = await client.list(kinds.JOB, meta["namespace"], selector)
    return keeping(
        job, [j["metadata"].get("annotations", {}).get(naming.ANNOTATION_ARTEFACT, "") for j in others]
    )


async def observe_preparation(client: KubeClient, plan: Plan) -> PreparationState | None:
    job = plan.preparation.job
    if job is None:
        return None
    meta = job["metadata"]
    actual = await client.get(kinds.JOB, meta["namespace"], meta["name"])
    pods = await client.list(kinds.POD, meta["namespace"], {JOB_NAME_LABEL: meta["name"]}) if actual else []
    return observe_job(actual, pods)


async def reconcile(
    client: KubeClient, *, owner: Mapping[str, Any], spec: RerankerDeploymentSpec, config: OperatorConfig
) -> Outcome:
    """Prepare first: the Deployment is created or changed only once its recipe's Job succeeded, so a
    new model, revision or quantisation never replaces pods that serve the old one before it is ready."""
    meta = owner["metadata"]
    ref = ChildRef(cr_name=meta["name"], namespace=meta["namespace"])
    capabilities = await detect_capabilities(client)
    plan = plan_children(spec, ref, config, capabilities)
    changes: list[Change] = []
    for shared in plan.shared:
        change = await apply_shared(client, shared, owner)
        if change is not None:
            changes.append(change)
    preparation = await observe_preparation(client, plan)
    hold_deployment = preparation is not None and preparation.phase != "Prepared"
    for child in owned(plan.children, owner):
        if hold_deployment and child["kind"] == kinds.DEPLOYMENT.kind:
            continue
        change = await apply_child(client, child, meta["uid"])
        if change is not None:
            changes.append(change)
    keep = {(child["kind"], child["metadata"]["name"]) for child in plan.children}
    changes += await prune(client, ref, meta["uid"], keep, capabilities)
    observed = await observe(client, ref)
    return Outcome(plan=plan, changes=tuple(changes), observed=observed, preparation=preparation)


async def observe(client: KubeClient, ref: ChildRef) -> Observed:
    deployment = await client.get(kinds.DEPLOYMENT, ref.namespace, ref.name)
    pods = await client.list(kinds.POD, ref.namespace, naming.selector_labels(ref.cr_name))
    return Observed(deployment=deployment, pods=pods)
