"""Model preparation: the Job (or initContainer) that turns a recipe into an artefact, and its claim.

A recipe (model, revision, backend, quantization) is prepared once per cache claim by a Job running
the export image's `reranker-server prepare`, into `/cache/artefacts/<model>-<digest>`; server pods
mount the claim read-only and load that directory (RERANKER_ARTEFACT). The Job's name follows from
the claim and the recipe, so RerankerDeployments of one namespace that share both share the Job.
Without a shared claim, each pod runs the same container as an initContainer into its emptyDir.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final

from reranker_operator import naming
from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.resources.common import ChildRef
from reranker_operator.resources.quantity import mebibytes

CACHE_DIR: Final = "/cache"
TMP_DIR: Final = "/tmp"
TERMINATION_LOG: Final = "/dev/termination-log"
#: A preparation deletes artefacts on its claim that no existing preparation Job names and that were
#: prepared longer ago than this (the rule is in reranker_server/preparation/collect.py).
COLLECT_AFTER_HOURS: Final = 24
#: `reranker-server prepare` exits 1 for failures a retry cannot fix (no such model, no network and
#: nothing cached, unsupported architecture, integrity check failed): the Job fails at once.
PERMANENT_FAILURE_EXIT_CODE: Final = 1
DEFAULT_CLAIM_MEBIBYTES: Final = 16384
PREPARE_TMP_SIZE: Final = "2Gi"
#: Exporting an XLM-R-large-sized checkpoint (bge-reranker-v2-m3, 568M parameters) peaks near 8 GB.
DEFAULT_PREPARE_RESOURCES: Final = {
    "requests": {"cpu": "2", "memory": "8Gi"},
    "limits": {"cpu": "2", "memory": "12Gi"},
}
RUN_AS_ID: Final = 10001


@dataclass(frozen=True)
class Preparation:
    """How one RerankerDeployment's model is prepared, and where its pods find the result."""

    digest: str
    artefact: str
    claim_name: str | None
    claim: dict[str, Any] | None
    job: dict[str, Any] | None

    @property
    def shared(self) -> bool:
        return self.claim_name is not None


def plan_preparation(spec: RerankerDeploymentSpec, ref: ChildRef, *, image: str) -> Preparation:
    model = spec.model
    digest = naming.recipe_digest(model.id, model.revision, spec.backend, model.quantization)
    artefact = f"{CACHE_DIR}/{naming.ARTEFACTS_DIR}/{naming.artefact_dir_name(model.id, digest)}"
    cache = model.cache
    if cache.claim_name is not None:
        claim_name, claim = cache.claim_name, None
    elif cache.storage_class_name is not None:
        claim_name = naming.cache_claim_name(cache.storage_class_name)
        claim = build_cache_claim(spec, ref, claim_name)
    else:
        return Preparation(digest=digest, artefact=artefact, claim_name=None, claim=None, job=None)
    job = build_prepare_job(spec, ref, claim_name=claim_name, digest=digest, artefact=artefact, image=image)
    return Preparation(digest=digest, artefact=artefact, claim_name=claim_name, claim=claim, job=job)


def prepare_container(
    spec: RerankerDeploymentSpec, *, image: str, artefact: str, resources: dict[str, Any]
) -> dict[str, Any]:
    """`reranker-server prepare` for the spec's recipe; the user's env (HF_TOKEN) comes along."""
    settings = {
        "RERANKER_MODEL": spec.model.id,
        "RERANKER_REVISION": spec.model.revision,
        "RERANKER_BACKEND": spec.backend,
        "RERANKER_QUANTIZE": spec.model.quantization,
        "RERANKER_CACHE_DIR": CACHE_DIR,
        "RERANKER_LOG_FORMAT": "json",
        "HOME": TMP_DIR,
        "HF_HOME": f"{CACHE_DIR}/huggingface",
    }
    user_names = {item["name"] for item in spec.env}
    env = [{"name": name, "value": value} for name, value in settings.items() if name not in user_names]
    return {
        "name": naming.PREPARE_CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["reranker-server"],
        "args": ["prepare", "--out", artefact, "--termination-log", TERMINATION_LOG],
        "env": env + copy.deepcopy(spec.env),
        "resources": copy.deepcopy(spec.prepare.resources or resources),
        # The one-line result (or `Reason: message`) reaches the operator through the pod's status.
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "cache", "mountPath": CACHE_DIR}, {"name": "tmp", "mountPath": TMP_DIR}],
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_ID,
        "runAsGroup": RUN_AS_ID,
        "fsGroup": RUN_AS_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def serving_node_placement(spec: RerankerDeploymentSpec) -> dict[str, Any]:
    """The serving pods' node constraints, for a CPU preparation: an int8 graph's weight type is chosen
    for the CPU that quantises it (signed on VNNI, unsigned on older x86), so the Job runs on the
    nodes that will serve it. Pod (anti-)affinity is left out: it is about the serving pods' peers."""
    overrides = spec.pod_template
    placement: dict[str, Any] = {}
    if overrides.node_selector:
        placement["nodeSelector"] = dict(overrides.node_selector)
    if overrides.tolerations:
        placement["tolerations"] = copy.deepcopy(overrides.tolerations)
    node_affinity = (overrides.affinity or {}).get("nodeAffinity")
    if node_affinity:
        placement["affinity"] = {"nodeAffinity": copy.deepcopy(node_affinity)}
    return placement


def build_prepare_job(
    spec: RerankerDeploymentSpec, ref: ChildRef, *, claim_name: str, digest: str, artefact: str, image: str
) -> dict[str, Any]:
    """The Job; its spec never changes once created (Jobs are immutable), only its owners do."""
    container = prepare_container(spec, image=image, artefact=artefact, resources=DEFAULT_PREPARE_RESOURCES)
    container["args"] += ["--collect-after-hours", str(COLLECT_AFTER_HOURS)]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [
            {"name": "cache", "persistentVolumeClaim": {"claimName": claim_name}},
            {"name": "tmp", "emptyDir": {"sizeLimit": PREPARE_TMP_SIZE}},
        ],
    }
    if spec.pod_template.image_pull_secrets:
        pod["imagePullSecrets"] = copy.deepcopy(spec.pod_template.image_pull_secrets)
    if spec.backend == "cpu":
        pod |= serving_node_placement(spec)
    labels = naming.preparation_labels(digest) | {naming.LABEL_CLAIM: claim_name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "annotations": {naming.ANNOTATION_ARTEFACT: artefact.rsplit("/", 1)[-1]},
            "name": naming.prepare_job_name(claim_name, digest),
            "namespace": ref.namespace,
            "labels": labels,
        },
        "spec": {
            "backoffLimit": spec.prepare.backoff_limit,
            "activeDeadlineSeconds": spec.prepare.active_deadline_seconds,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": naming.PREPARE_CONTAINER_NAME,
                            "operator": "In",
                            "values": [PERMANENT_FAILURE_EXIT_CODE],
                        },
                    },
                    # An evicted or preempted pod is not the preparation's fault: retry without counting.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def keeping(job: dict[str, Any], artefacts: list[str]) -> dict[str, Any]:
    """The Job with `--keep` for the artefacts other preparation Jobs of its claim made (still in use)."""
    kept = copy.deepcopy(job)
    own = job["metadata"]["annotations"][naming.ANNOTATION_ARTEFACT]
    for name in sorted(set(artefacts) - {own}):
        kept["spec"]["template"]["spec"]["containers"][0]["args"] += ["--keep", name]
    return kept


def build_cache_claim(spec: RerankerDeploymentSpec, ref: ChildRef, claim_name: str) -> dict[str, Any]:
    """One ReadWriteMany claim per namespace and storage class, shared by the CRs that name the class."""
    cache = spec.model.cache
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim_name,
            "namespace": ref.namespace,
            "labels": {
                naming.LABEL_NAME: "reranker-model-cache",
                naming.LABEL_PART_OF: naming.PART_OF,
                naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
            },
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": cache.storage_class_name,
            "resources": {
                "requests": {"storage": mebibytes(cache.size_mebibytes or DEFAULT_CLAIM_MEBIBYTES)}
            },
        },
    }
