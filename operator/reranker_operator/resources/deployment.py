"""The server Deployment: probes that wait for warm-up, safe rollouts, a locked-down pod.

The container's command, args and env are the server's settings contract (`reranker-server
serve` reads RERANKER_* variables); a contract test starts the real server with exactly what
this builder renders.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Final

from reranker_operator import naming
from reranker_operator.api import GPU_RESOURCE, RerankerDeploymentSpec
from reranker_operator.resources.common import ChildRef, metadata
from reranker_operator.resources.preparation import (
    RUN_AS_ID,
    Preparation,
    pod_security_context,
    prepare_container,
)
from reranker_operator.resources.quantity import mebibytes, whole_cores

COMMAND: Final = ("reranker-server",)
ARGS: Final = ("serve",)
READY_PATH: Final = "/ready"
HEALTH_PATH: Final = "/health"
METRICS_PATH: Final = "/metrics"
CACHE_DIR: Final = "/cache"
TMP_DIR: Final = "/tmp"
DEFAULT_CACHE_MEBIBYTES: Final = 4096
TMP_SIZE: Final = "1Gi"
API_KEYS_DIR: Final = "/etc/kube-reranker/api-keys"
#: Owner and group may read the mounted keys (the group is the pod's fsGroup); nobody else.
API_KEYS_MODE: Final = 0o440
ZONE_KEY: Final = "topology.kubernetes.io/zone"
HOSTNAME_KEY: Final = "kubernetes.io/hostname"
# The image runs as RUN_AS_ID (resources.preparation); fsGroup makes a cache PVC writable for the Job.
__all__ = ["RUN_AS_ID", "build_deployment"]

# Shutdown: preStop keeps the pod serving while endpoints drop it, then the server drains.
PRE_STOP_SECONDS: Final = 5
DRAIN_SECONDS: Final = 20
GRACE_MARGIN_SECONDS: Final = 10
STARTUP_PERIOD_SECONDS: Final = 10
PROGRESS_MARGIN_SECONDS: Final = 120

DEFAULT_RESOURCES: Final = {
    "cpu": {"requests": {"cpu": "2", "memory": "3Gi"}, "limits": {"cpu": "2", "memory": "6Gi"}},
    "gpu": {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "16Gi"}},
}
GPU_TOLERATION: Final = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def build_deployment(
    spec: RerankerDeploymentSpec,
    ref: ChildRef,
    *,
    image: str,
    autoscaled: bool,
    preparation: Preparation,
    export_image: str,
) -> dict[str, Any]:
    """The Deployment; `autoscaled` leaves spec.replicas to the HPA or KEDA so applies never fight them.

    Its pods serve `preparation.artefact` from the cache volume, mounted read-only: a shared claim the
    preparation Job filled, or (no shared cache) an emptyDir the pod's own initContainer fills.
    """
    deployment_spec: dict[str, Any] = {}
    if not autoscaled:
        deployment_spec["replicas"] = spec.replicas.min
    deployment_spec |= {
        "selector": {"matchLabels": naming.selector_labels(ref.cr_name)},
        "strategy": rollout_strategy(spec),
        "revisionHistoryLimit": 5,
        "progressDeadlineSeconds": spec.warmup.startup_timeout_seconds + PROGRESS_MARGIN_SECONDS,
        "template": {
            "metadata": {
                "labels": {**spec.pod_template.labels, **naming.labels(ref.cr_name)},
                "annotations": {**scrape_annotations(), **spec.pod_template.annotations},
            },
            "spec": pod_spec(spec, ref, image=image, preparation=preparation, export_image=export_image),
        },
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(ref), "spec": deployment_spec}


def scrape_annotations() -> dict[str, str]:
    """For Prometheus setups without the Prometheus Operator (annotation-based scrape configs)."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(naming.METRICS_PORT),
        "prometheus.io/path": METRICS_PATH,
    }


def pod_spec(
    spec: RerankerDeploymentSpec, ref: ChildRef, *, image: str, preparation: Preparation, export_image: str
) -> dict[str, Any]:
    overrides = spec.pod_template
    pod: dict[str, Any] = {
        # The server never talks to the API server, and service links would inject RERANKER_PORT-like
        # variables for a Service named "reranker", colliding with the server's own settings.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": PRE_STOP_SECONDS + DRAIN_SECONDS + GRACE_MARGIN_SECONDS,
        "securityContext": pod_security_context(),
        "containers": [container(spec, image=image, artefact=preparation.artefact)],
        "volumes": volumes(spec, preparation),
    }
    if overrides.affinity:
        pod["affinity"] = copy.deepcopy(overrides.affinity)
    spread = topology_spread(spec, ref)
    if spread:
        pod["topologySpreadConstraints"] = spread
    if not preparation.shared:
        # No shared cache: every pod prepares into its own emptyDir before the server starts (slow).
        # The pod is sized for the model already: the preparation gets the server's CPU and memory.
        resources = {
            scope: {name: value for name, value in amounts.items() if name != GPU_RESOURCE}
            for scope, amounts in container_resources(spec).items()
        }
        pod["initContainers"] = [
            prepare_container(spec, image=export_image, artefact=preparation.artefact, resources=resources)
        ]
    if overrides.service_account_name:
        pod["serviceAccountName"] = overrides.service_account_name
    if overrides.priority_class_name:
        pod["priorityClassName"] = overrides.priority_class_name
    if overrides.node_selector:
        pod["nodeSelector"] = dict(overrides.node_selector)
    tolerations = copy.deepcopy(overrides.tolerations)
    if spec.backend == "gpu" and GPU_TOLERATION not in tolerations:
        tolerations.append(dict(GPU_TOLERATION))
    if tolerations:
        pod["tolerations"] = tolerations
    if overrides.image_pull_secrets:
        pod["imagePullSecrets"] = copy.deepcopy(overrides.image_pull_secrets)
    return pod


def rollout_strategy(spec: RerankerDeploymentSpec) -> dict[str, Any]:
    """surge never serves with fewer warmed-up pods; replace needs no room (no spare GPU) for a new one."""
    if spec.rollout.strategy == "replace":
        return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def topology_spread(spec: RerankerDeploymentSpec, ref: ChildRef) -> list[dict[str, Any]]:
    """Replicas across zones, then nodes, when more than one can exist; ScheduleAnyway, so a one-zone or
    one-node cluster still schedules them. pod-template-hash counts each rollout's pods on their own."""
    if spec.pod_template.topology_spread_constraints is not None:
        return copy.deepcopy(spec.pod_template.topology_spread_constraints)
    if spec.replicas.max <= 1:
        return []
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": naming.selector_labels(ref.cr_name)},
            "matchLabelKeys": ["pod-template-hash"],
        }
        for key in (ZONE_KEY, HOSTNAME_KEY)
    ]


def container(spec: RerankerDeploymentSpec, *, image: str, artefact: str) -> dict[str, Any]:
    resources = container_resources(spec)
    return {
        "name": naming.CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(COMMAND),
        "args": list(ARGS),
        "ports": [
            {"name": naming.HTTP_PORT_NAME, "containerPort": naming.HTTP_PORT, "protocol": "TCP"},
            {"name": naming.METRICS_PORT_NAME, "containerPort": naming.METRICS_PORT, "protocol": "TCP"},
        ],
        "env": env(spec, threads=intra_op_threads(resources), artefact=artefact),
        "resources": resources,
        # Start-up covers load, the integrity check and warm-up (preparation ran before the container).
        "startupProbe": _http_probe(
            READY_PATH,
            period_seconds=STARTUP_PERIOD_SECONDS,
            failure_threshold=math.ceil(spec.warmup.startup_timeout_seconds / STARTUP_PERIOD_SECONDS),
        ),
        # Readiness fails fast so a draining pod leaves the Service within seconds.
        "readinessProbe": _http_probe(READY_PATH, period_seconds=5, failure_threshold=2),
        # Liveness only asks whether the process answers, never whether the model is busy.
        "livenessProbe": _http_probe(HEALTH_PATH, period_seconds=10, failure_threshold=3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # The server only reads the prepared artefact: it never writes to the cache.
        "volumeMounts": [
            {"name": "cache", "mountPath": CACHE_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": TMP_DIR},
            *(
                [{"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True}]
                if spec.auth.secret_name
                else []
            ),
        ],
    }


def _http_probe(path: str, *, period_seconds: int, failure_threshold: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": naming.HTTP_PORT_NAME},
        "periodSeconds": period_seconds,
        "timeoutSeconds": 5,
        "failureThreshold": failure_threshold,
    }


def container_resources(spec: RerankerDeploymentSpec) -> dict[str, Any]:
    """User resources (or backend defaults), with gpu.count as the single source of the GPU limit."""
    resources = (
        copy.deepcopy(spec.resources) if spec.resources else copy.deepcopy(DEFAULT_RESOURCES[spec.backend])
    )
    if spec.backend == "gpu":
        count = str(spec.gpu.count if spec.gpu else 1)
        resources.setdefault("limits", {})[GPU_RESOURCE] = count
        if GPU_RESOURCE in resources.get("requests", {}):
            resources["requests"][GPU_RESOURCE] = count
    return resources


def intra_op_threads(resources: dict[str, Any]) -> int:
    """ONNX Runtime threads = whole cores of the CPU limit (else request); 0 lets the server read cgroups."""
    cpu = resources.get("limits", {}).get("cpu") or resources.get("requests", {}).get("cpu")
    return whole_cores(cpu) if cpu is not None else 0


def env(spec: RerankerDeploymentSpec, *, threads: int, artefact: str) -> list[dict[str, Any]]:
    """The server's settings contract, then the user's extra variables (which may override HOME/HF_HOME)."""
    settings = {
        "RERANKER_HOST": "0.0.0.0",
        "RERANKER_PORT": str(naming.HTTP_PORT),
        "RERANKER_METRICS_PORT": str(naming.METRICS_PORT),
        "RERANKER_MODEL": spec.model.id,
        "RERANKER_REVISION": spec.model.revision,
        "RERANKER_CACHE_DIR": CACHE_DIR,
        "RERANKER_ARTEFACT": artefact,
        # Why a start-up failed, for the kubelet to report once the startup probe restarts the pod.
        "RERANKER_TERMINATION_LOG": "/dev/termination-log",
        "RERANKER_QUANTIZE": spec.model.quantization,
        "RERANKER_MAX_LENGTH": str(spec.model.max_length),
        "RERANKER_BACKEND": spec.backend,
        "RERANKER_MAX_CANDIDATES": str(spec.max_candidates),
        "RERANKER_K_CAP_POLICY": spec.max_candidates_policy,
        "RERANKER_MAX_BATCH_TOKENS": str(spec.batching.max_batch_tokens),
        "RERANKER_MAX_BATCH_WAIT_MS": str(spec.batching.max_wait_milliseconds),
        "RERANKER_LATENCY_SLO_MS": str(spec.latency_slo.p95_milliseconds),
        "RERANKER_WARMUP_REQUESTS": str(spec.warmup.requests),
        "RERANKER_INTRA_OP_THREADS": str(threads),
        "RERANKER_DRAIN_TIMEOUT_S": str(DRAIN_SECONDS),
        "RERANKER_LOG_FORMAT": "json",
        **({"RERANKER_API_KEYS_FILE": f"{API_KEYS_DIR}/{spec.auth.key}"} if spec.auth.secret_name else {}),
        # The root filesystem is read-only: libraries that write under $HOME get /tmp, the hub the cache.
        "HOME": TMP_DIR,
        "HF_HOME": f"{CACHE_DIR}/huggingface",
    }
    user_names = {item["name"] for item in spec.env}
    rendered = [{"name": name, "value": value} for name, value in settings.items() if name not in user_names]
    return rendered + copy.deepcopy(spec.env)


def volumes(spec: RerankerDeploymentSpec, preparation: Preparation) -> list[dict[str, Any]]:
    cache = spec.model.cache
    if preparation.claim_name is not None:
        cache_volume: dict[str, Any] = {
            "name": "cache",
            "persistentVolumeClaim": {"claimName": preparation.claim_name, "readOnly": True},
        }
    else:
        size = cache.size_mebibytes or DEFAULT_CACHE_MEBIBYTES
        cache_volume = {"name": "cache", "emptyDir": {"sizeLimit": mebibytes(size)}}
    rendered = [cache_volume, {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}]
    if spec.auth.secret_name:
        secret = {"secretName": spec.auth.secret_name, "defaultMode": API_KEYS_MODE}
        rendered.append({"name": "api-keys", "secret": secret})
    return rendered
