"""The RerankerDeployment status as a pure function of the spec, the plan and the observed children.

Conditions follow the Kubernetes API conventions (type, status, reason, message,
lastTransitionTime, observedGeneration); there is no phase string. Three writers share these
functions: the reconcile handler (after applying children), the Deployment watcher (when pods
become ready) and the SLO timer (slo.py builds its conditions from what Prometheus reports).
Each sets only its own conditions by type. Degraded reasons that only a reconcile can judge
(an invalid spec, a missing autoscaler) stay until the next reconcile clears them.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from reranker_operator import naming
from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.plan import Plan, Problem
from reranker_operator.preparing import PreparationState

READY: Final = "Ready"
PROGRESSING: Final = "Progressing"
WARMED_UP: Final = "WarmedUp"
MODEL_READY: Final = "ModelReady"
DEGRADED: Final = "Degraded"
AUTOSCALING: Final = "Autoscaling"
# Written by the SLO timer from Prometheus (slo.py), never by the reconcile.
SLO_MET: Final = "SLOMet"
SLO_FEASIBLE: Final = "SLOFeasible"
CONDITION_ORDER: Final = (
    READY,
    PROGRESSING,
    WARMED_UP,
    MODEL_READY,
    DEGRADED,
    AUTOSCALING,
    SLO_MET,
    SLO_FEASIBLE,
)

INVALID_SPEC: Final = "InvalidSpec"
CHILD_CONFLICT: Final = "ChildConflict"
# Degraded reasons that come from reconciling the spec, not from watching the Deployment.
PREPARATION_FAILED: Final = "PreparationFailed"
RECONCILE_REASONS: Final = frozenset(
    {INVALID_SPEC, CHILD_CONFLICT, "KEDAUnavailable", "PrometheusURLMissing", PREPARATION_FAILED}
)
SLOW_PATH: Final = (
    "each pod prepares the model into its own emptyDir before its server starts, so every new replica "
    "downloads and exports again: set model.cache.claimName (a ReadWriteMany claim) or "
    "model.cache.storageClassName to prepare once per recipe"
)
#: Reasons a server refuses the artefact it was given (reranker_server.artefact's ModelError reasons).
#: Reasons a server writes to its termination log when it refuses to start, and what each means.
START_REFUSALS: Final[Mapping[str, str]] = {
    "IntegrityCheckFailed": "refused its model",
    "ArtefactInvalid": "refused its model",
    "ApiKeysUnusable": "refused to serve without API keys",
    "GPUUnavailable": "cannot use a GPU",
}
IMAGE_PULL_REASONS: Final = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
START_FAILURE_REASONS: Final = frozenset({"CrashLoopBackOff", "CreateContainerConfigError"})


@dataclass(frozen=True)
class Verdict:
    """A condition before it is stamped with times and generations; status None is Unknown."""

    type: str
    status: bool | None
    reason: str
    message: str

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else str(self.status)


@dataclass(frozen=True)
class Rollout:
    """What the Deployment's status says about the server pods."""

    exists: bool
    desired: int = 0
    replicas: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0
    generation_observed: bool = False
    failure: Problem | None = None


def observe_deployment(deployment: Mapping[str, Any] | None) -> Rollout:
    if deployment is None:
        return Rollout(exists=False)
    status = deployment.get("status") or {}
    failure = None
    for item in status.get("conditions") or ():
        if item.get("type") == "Progressing" and item.get("status") == "False":
            failure = Problem(item.get("reason") or "ProgressDeadlineExceeded", item.get("message") or "")
        elif item.get("type") == "ReplicaFailure" and item.get("status") == "True":
            failure = Problem("ReplicaFailure", item.get("message") or item.get("reason") or "")
    generation = deployment.get("metadata", {}).get("generation")
    return Rollout(
        exists=True,
        desired=(deployment.get("spec") or {}).get("replicas", 1),
        replicas=status.get("replicas", 0),
        ready=status.get("readyReplicas", 0),
        updated=status.get("updatedReplicas", 0),
        available=status.get("availableReplicas", 0),
        generation_observed=generation is None or status.get("observedGeneration") == generation,
        failure=failure,
    )


def pod_problems(pods: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """Why server pods cannot run, in the words users act on (no GPU node, no image, a crash)."""
    problems: dict[str, Problem] = {}
    for pod in pods:
        name = pod.get("metadata", {}).get("name", "")
        pod_status = pod.get("status") or {}
        for item in pod_status.get("conditions") or ():
            if (item.get("type"), item.get("status"), item.get("reason")) == (
                "PodScheduled",
                "False",
                "Unschedulable",
            ):
                problems.setdefault("Unschedulable", _unschedulable(name, item.get("message") or ""))
        for container in pod_status.get("containerStatuses") or ():
            if refused := _refused_model(name, container):
                problems.setdefault(refused.reason, refused)
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason, detail = waiting.get("reason"), waiting.get("message") or "no details"
            if reason in IMAGE_PULL_REASONS:
                image = container.get("image", "")
                problems.setdefault(
                    "ImagePullFailed",
                    Problem(
                        "ImagePullFailed",
                        f"pod {name} cannot pull image {image} ({reason}: {detail}): "
                        "check spec.image and podTemplate.imagePullSecrets",
                    ),
                )
            elif reason in START_FAILURE_REASONS:
                problems.setdefault(
                    reason,
                    Problem(
                        reason, f"pod {name} cannot start the server ({reason}: {detail}): read its logs"
                    ),
                )
    return list(problems.values())


def _refused_model(pod: str, container: Mapping[str, Any]) -> Problem | None:
    """A server that refused its model wrote `Reason: message` to its termination log; the kubelet shows
    it once the container was restarted (the startup probe gave up on a pod that stayed 503)."""
    terminated = (container.get("lastState") or {}).get("terminated") or {}
    reason, separator, message = (terminated.get("message") or "").strip().partition(": ")
    if separator and reason in START_REFUSALS:
        return Problem(reason, f"pod {pod} {START_REFUSALS[reason]}: {message}")
    return None


def _unschedulable(pod: str, message: str) -> Problem:
    hint = "check resources, podTemplate.nodeSelector, tolerations and affinity"
    if "nvidia.com/gpu" in message:
        hint = "no node has a free nvidia.com/gpu: add GPU nodes, lower gpu.count or fix the nodeSelector"
    return Problem("Unschedulable", f"pod {pod} cannot be scheduled ({message}): {hint}")


def rollout_verdicts(rollout: Rollout) -> list[Verdict]:
    """Ready, Progressing and WarmedUp from the Deployment alone."""
    if not rollout.exists:
        return [
            Verdict(READY, False, "DeploymentMissing", "the server Deployment does not exist yet"),
            Verdict(PROGRESSING, True, "Creating", "creating the server Deployment"),
            Verdict(WARMED_UP, False, "DeploymentMissing", "no server pods exist yet"),
        ]
    if rollout.ready > 0:
        ready = Verdict(
            READY, True, "Serving", f"{rollout.ready} of {rollout.replicas} replicas serve requests"
        )
    else:
        ready = Verdict(READY, False, "NoReplicaReady", "no replica has finished model load and warm-up yet")
    if rollout.failure is not None:
        progressing = Verdict(PROGRESSING, False, rollout.failure.reason, rollout.failure.message)
    elif (
        not rollout.generation_observed
        or rollout.updated < rollout.desired
        or rollout.available < rollout.desired
        or rollout.replicas > rollout.desired
    ):
        progressing = Verdict(
            PROGRESSING,
            True,
            "RollingOut",
            f"{rollout.updated} of {rollout.desired} replicas updated, {rollout.available} available",
        )
    else:
        progressing = Verdict(
            PROGRESSING, False, "RolloutComplete", f"all {rollout.desired} replicas are up to date"
        )
    if rollout.replicas == 0:
        warmed = Verdict(WARMED_UP, False, "NoReplicas", "the Deployment has no pods")
    elif rollout.ready >= rollout.replicas:
        warmed = Verdict(
            WARMED_UP,
            True,
            "AllReplicasWarm",
            f"all {rollout.replicas} replicas loaded the model and warmed up",
        )
    else:
        warmed = Verdict(
            WARMED_UP,
            False,
            "WarmingUp",
            f"{rollout.replicas - rollout.ready} of {rollout.replicas} replicas still load or warm up",
        )
    return [ready, progressing, warmed]


def degraded_verdict(problems: Sequence[Problem], rollout: Rollout, pods: Sequence[Problem] = ()) -> Verdict:
    """Spec and plan problems first, then a failed rollout, then what the pods tell."""
    for found in (problems, [rollout.failure] if rollout.failure else [], pods):
        if found:
            return Verdict(DEGRADED, True, found[0].reason, "; ".join(problem.message for problem in found))
    return Verdict(DEGRADED, False, "AsExpected", "")


def autoscaling_verdict(spec: RerankerDeploymentSpec, plan: Plan) -> Verdict:
    bounds = f"{spec.replicas.min}..{spec.replicas.max} replicas"
    if not spec.autoscaling.enabled:
        return Verdict(
            AUTOSCALING, False, "Disabled", f"autoscaling.enabled is false: {spec.replicas.min} replicas"
        )
    if plan.metrics_source == "keda":
        return Verdict(
            AUTOSCALING, True, "KEDA", f"a KEDA ScaledObject scales {bounds} on P95 and in-flight requests"
        )
    if plan.metrics_source == "prometheus-adapter":
        return Verdict(
            AUTOSCALING,
            True,
            "PrometheusAdapter",
            f"an HPA scales {bounds} on P95 and in-flight requests served by prometheus-adapter",
        )
    problem = plan.problems[0]
    return Verdict(AUTOSCALING, False, problem.reason, problem.message)


def model_verdict(preparation: PreparationState | None, rollout: Rollout) -> Verdict:
    """ModelReady: the shared artefact's Job, or (no shared cache) whether a pod got as far as serving."""
    if preparation is None:
        if rollout.ready > 0:
            return Verdict(MODEL_READY, True, "PreparedInEachPod", SLOW_PATH)
        return Verdict(MODEL_READY, False, "PreparingInEachPod", SLOW_PATH)
    if preparation.phase == "Prepared":
        digest = (preparation.result or {}).get("digest")
        return Verdict(MODEL_READY, True, "Prepared", f"{preparation.message} ({digest or 'digest unknown'})")
    message = preparation.message
    if rollout.exists:
        message += "; the running pods keep serving the model they have until a preparation succeeds"
    return Verdict(MODEL_READY, False, preparation.phase, f"{preparation.reason}: {message}")


def model_status(preparation: PreparationState | None, artefact: str) -> dict[str, Any] | None:
    result = preparation.result if preparation is not None else None
    if not result:
        return None
    return {
        "artefact": result.get("artefact", artefact),
        "digest": result.get("digest"),
        "resolvedCommit": result.get("resolvedCommit"),
        "sizeBytes": result.get("sizeBytes"),
        "preparationSeconds": round(result.get("preparationSeconds") or 0),
    }


def stamp(
    verdicts: Sequence[Verdict], previous: Sequence[Mapping[str, Any]], generation: int | None, now: str
) -> list[dict[str, Any]]:
    """Conditions in a stable order; lastTransitionTime moves only when the status flips."""
    before = {item.get("type"): item for item in previous}
    stamped: dict[str, dict[str, Any]] = {item["type"]: dict(item) for item in previous if item.get("type")}
    for verdict in verdicts:
        status = verdict.status_text
        old = before.get(verdict.type)
        changed = old is None or old.get("status") != status
        condition: dict[str, Any] = {
            "type": verdict.type,
            "status": status,
            "reason": verdict.reason,
            "message": verdict.message,
            "lastTransitionTime": now if changed else old["lastTransitionTime"],
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        stamped[verdict.type] = condition
    known = [stamped.pop(kind) for kind in CONDITION_ORDER if kind in stamped]
    return known + [stamped[kind] for kind in sorted(stamped)]


@dataclass(frozen=True)
class StatusUpdate:
    """A status change, applied by each writer to the freshest object it has.

    `fields` are top-level status fields (merged); `verdicts` become conditions set by type, so
    conditions written by others (SLOMet) survive. With `keep_reconcile_degraded`, a Degraded
    that only a reconcile can judge (an invalid spec) is left alone.
    """

    fields: Mapping[str, Any]
    verdicts: tuple[Verdict, ...]
    generation: int | None
    keep_reconcile_degraded: bool = False

    def conditions(self, previous: Sequence[Mapping[str, Any]], now: str) -> list[dict[str, Any]]:
        verdicts = self.verdicts
        if self.keep_reconcile_degraded and _reconcile_owns_degraded(previous):
            verdicts = tuple(verdict for verdict in verdicts if verdict.type != DEGRADED)
        return stamp(verdicts, previous, self.generation, now)

    def applied_to(self, previous: Mapping[str, Any], now: str) -> dict[str, Any]:
        """The whole status after this update."""
        return {
            **previous,
            **self.fields,
            "conditions": self.conditions(previous.get("conditions") or (), now),
        }


def _reconcile_owns_degraded(conditions: Sequence[Mapping[str, Any]]) -> bool:
    current = next((item for item in conditions if item.get("type") == DEGRADED), None)
    return (
        current is not None and current.get("status") == "True" and current.get("reason") in RECONCILE_REASONS
    )


def set_conditions(body: MutableMapping[str, Any], *, update: StatusUpdate, now: str) -> None:
    """A kopf patch function: set the update's conditions on the freshest body, by type, if they differ."""
    current = (body.get("status") or {}).get("conditions") or []
    wanted = update.conditions(current, now)
    if wanted != current:
        body.setdefault("status", {})["conditions"] = wanted


def reconciled(
    *,
    spec: RerankerDeploymentSpec,
    name: str,
    namespace: str,
    generation: int | None,
    plan: Plan,
    problems: Sequence[Problem],
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    preparation: PreparationState | None = None,
) -> StatusUpdate:
    """The status after a reconcile of `generation`."""
    rollout = observe_deployment(deployment)
    if preparation is not None and preparation.phase == PREPARATION_FAILED:
        problems = [*problems, Problem(PREPARATION_FAILED, f"{preparation.reason}: {preparation.message}")]
    verdicts = (
        *rollout_verdicts(rollout),
        model_verdict(preparation, rollout),
        degraded_verdict([*problems, *plan.problems], rollout, pod_problems(pods)),
        autoscaling_verdict(spec, plan),
    )
    fields = {
        "observedGeneration": generation,
        "replicas": rollout.replicas,
        "readyReplicas": rollout.ready,
        "endpoint": naming.endpoint(name, namespace),
        "metricsSource": plan.metrics_source,
    }
    if (model := model_status(preparation, plan.preparation.artefact)) is not None:
        fields["model"] = model
    return StatusUpdate(fields=fields, verdicts=verdicts, generation=generation)


def rejected(*, problem: Problem, generation: int | None, spec_rejected: bool) -> StatusUpdate:
    """A spec or child the operator cannot act on: children stay as they were, Degraded says what to fix.

    An invalid spec counts as handled (observedGeneration moves); a rejected child does not.
    """
    fields = {"observedGeneration": generation} if spec_rejected else {}
    verdict = Verdict(DEGRADED, True, problem.reason, problem.message)
    return StatusUpdate(fields=fields, verdicts=(verdict,), generation=generation)


def refreshed(
    *, deployment: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]], generation: int | None
) -> StatusUpdate:
    """The Deployment or its pods changed: update what they tell, keep what only a reconcile can judge."""
    rollout = observe_deployment(deployment)
    verdicts = (*rollout_verdicts(rollout), degraded_verdict((), rollout, pod_problems(pods)))
    fields = {"replicas": rollout.replicas, "readyReplicas": rollout.ready}
    return StatusUpdate(fields=fields, verdicts=verdicts, generation=generation, keep_reconcile_degraded=True)


def status_patch(previous: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level status fields that changed, as a merge patch (None deletes a field)."""
    return {key: value for key, value in desired.items() if previous.get(key) != value}
