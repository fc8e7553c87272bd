"""The RerankerDeployment API as typed models: the single source of truth.

`crdgen.py` turns these models into the CRD (descriptions, defaults, bounds, enums and the
CEL rules declared here), and the operator parses every spec with the same models, so
the API server and the operator can never disagree about what a valid spec is. Each CEL
rule has a Python twin that raises the same message; a test evaluates both on the same
specs and fails if they disagree.

Upstream Kubernetes shapes (resources, tolerations, affinity, env, image pull secrets,
conditions) are not retyped: fields typed `Upstream(...)` are filled by `crdgen` from the
official Kubernetes schemas and stay plain dicts here, validated by the API server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from reranker_operator import naming

UPSTREAM_KEY: Final = "x-kube-reranker-upstream"
GPU_RESOURCE: Final = "nvidia.com/gpu"

# Env vars the operator derives from spec fields; setting them in spec.env would silently
# fight the spec, so the API rejects them and names the field to use instead.
MANAGED_ENV: Final[Mapping[str, str]] = {
    "RERANKER_HOST": "the operator (pods always listen on all interfaces)",
    "RERANKER_PORT": "the operator (the Service targets port 8080)",
    "RERANKER_METRICS_PORT": "the operator (Prometheus scrapes port 9090)",
    "RERANKER_MODEL": "model.id",
    "RERANKER_REVISION": "model.revision",
    "RERANKER_CACHE_DIR": "model.cache",
    "RERANKER_ARTEFACT": "the operator (its preparation Job or initContainer writes the artefact)",
    "RERANKER_TERMINATION_LOG": "the operator (the kubelet reads /dev/termination-log)",
    "RERANKER_QUANTIZE": "model.quantization",
    "RERANKER_MAX_LENGTH": "model.maxLength",
    "RERANKER_BACKEND": "backend",
    "RERANKER_MAX_CANDIDATES": "maxCandidates",
    "RERANKER_K_CAP_POLICY": "maxCandidatesPolicy",
    "RERANKER_MAX_BATCH_TOKENS": "batching.maxBatchTokens",
    "RERANKER_MAX_BATCH_WAIT_MS": "batching.maxWaitMilliseconds",
    "RERANKER_LATENCY_SLO_MS": "latencySLO.p95Milliseconds",
    "RERANKER_WARMUP_REQUESTS": "warmup.requests",
    "RERANKER_INTRA_OP_THREADS": "resources (threads follow the CPU limit)",
    "RERANKER_DRAIN_TIMEOUT_S": "the operator (it sizes terminationGracePeriodSeconds)",
    "RERANKER_API_KEYS_FILE": "auth.secretName",
}
MAX_TOKENS_PER_REQUEST: Final = 1_048_576
SELECTOR_LABEL_KEYS: Final = (naming.LABEL_NAME, naming.LABEL_INSTANCE)


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry and its Python twin's message."""

    rule: str
    message: str

    def require(self, condition: bool) -> None:
        if not condition:
            raise ValueError(self.message)

    def as_schema(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


def cel(*rules: CelRule) -> dict[str, Any]:
    return {"x-kubernetes-validations": [rule.as_schema() for rule in rules]}


class Upstream:
    """Marks a field whose schema is an official Kubernetes definition, inlined by crdgen."""

    def __init__(self, definition: str) -> None:
        self.definition = definition

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {UPSTREAM_KEY: self.definition}


ResourceRequirements = Annotated[dict[str, Any], Upstream("io.k8s.api.core.v1.ResourceRequirements")]
Toleration = Annotated[dict[str, Any], Upstream("io.k8s.api.core.v1.Toleration")]
Affinity = Annotated[dict[str, Any], Upstream("io.k8s.api.core.v1.Affinity")]
EnvVar = Annotated[dict[str, Any], Upstream("io.k8s.api.core.v1.EnvVar")]
LocalObjectReference = Annotated[dict[str, Any], Upstream("io.k8s.api.core.v1.LocalObjectReference")]
TopologySpreadConstraint = Annotated[dict[str, Any], Upstream("io.k8s.api.core.v1.TopologySpreadConstraint")]
Condition = Annotated[dict[str, Any], Upstream("io.k8s.apimachinery.pkg.apis.meta.v1.Condition")]


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields rejected (the CRD prunes them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def section(model: type[ApiModel], description: str) -> Any:
    """A nested object that is always present: `default: {}` lets the API server fill its defaults."""
    return Field(default_factory=model, description=description, json_schema_extra={"default": {}})


CACHE_CLAIM_XOR_SIZE = CelRule(
    "!(has(self.claimName) && has(self.sizeMebibytes))",
    "model.cache.sizeMebibytes sizes the emptyDir or the claim the operator creates and cannot be "
    "combined with model.cache.claimName (the PVC's own size applies): remove one of them",
)
CACHE_CLAIM_XOR_CLASS = CelRule(
    "!(has(self.claimName) && has(self.storageClassName))",
    "model.cache.claimName names your own claim and model.cache.storageClassName asks the operator to "
    "create one: set only one of them",
)


class CacheSpec(ApiModel):
    """Where prepared models live: a shared claim (prepared once by a Job) or each pod's emptyDir."""

    model_config = ConfigDict(json_schema_extra=cel(CACHE_CLAIM_XOR_SIZE, CACHE_CLAIM_XOR_CLASS))

    claim_name: str | None = Field(
        None,
        max_length=253,
        description="A ReadWriteMany PersistentVolumeClaim in the same namespace: the operator prepares "
        "each recipe once into it with a Job, and every server pod mounts it read-only. Empty with no "
        "storageClassName: each pod prepares the model into its own emptyDir (slow, works everywhere).",
    )
    storage_class_name: str | None = Field(
        None,
        max_length=253,
        description="A storage class with ReadWriteMany volumes: the operator creates one cache claim per "
        "namespace and class (sizeMebibytes, default 16384), shared by every RerankerDeployment using it.",
    )
    size_mebibytes: int | None = Field(
        None,
        ge=256,
        le=1_048_576,
        description="Size of the emptyDir cache (default 4096) or of the claim the operator creates "
        "(default 16384), in MiB.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> CacheSpec:
        CACHE_CLAIM_XOR_SIZE.require(not (self.claim_name is not None and self.size_mebibytes is not None))
        CACHE_CLAIM_XOR_CLASS.require(
            not (self.claim_name is not None and self.storage_class_name is not None)
        )
        return self

    @property
    def shared(self) -> bool:
        """A claim every pod mounts, prepared once by a Job, rather than each pod's own emptyDir."""
        return self.claim_name is not None or self.storage_class_name is not None


class PrepareSpec(ApiModel):
    """The model preparation (download, export, fusion, int8, integrity canaries), once per recipe."""

    resources: ResourceRequirements | None = Field(
        None,
        description="Resources of the preparation container (Job or initContainer); empty: 2 CPUs and "
        "8Gi-12Gi of memory, enough to export an XLM-R-large-sized model. Raise memory when the "
        "preparation is OOM-killed.",
    )
    backoff_limit: int = Field(
        2,
        ge=0,
        le=6,
        description="Retries of a preparation Job that crashed or was evicted; a preparation that "
        "failed for a reason a retry cannot fix (no such model, unsupported architecture) is not retried.",
    )
    active_deadline_seconds: int = Field(
        3600, ge=60, le=86_400, description="How long one preparation Job may run before it fails."
    )


class ModelSpec(ApiModel):
    """Which cross-encoder to serve and how its inputs are bounded."""

    id: str = Field(
        min_length=1,
        max_length=512,
        description="Hugging Face model id (e.g. cross-encoder/ms-marco-MiniLM-L-6-v2, "
        "BAAI/bge-reranker-v2-m3) or a directory inside the cache volume.",
    )
    revision: str = Field(
        "main", min_length=1, max_length=256, description="Model revision: branch, tag or commit."
    )
    max_length: int = Field(
        512,
        ge=16,
        le=8192,
        description="Maximum tokens per (query, document) pair; longer pairs are truncated. Latency grows "
        "with it, so keep it as small as the documents allow.",
    )
    quantization: Literal["none", "int8", "fp16"] = Field(
        "none",
        description="int8: dynamic int8 weights on CPU, typically 2-3x faster at a small accuracy cost. "
        "fp16: half-precision weights and activations on GPU (fp32 inputs and logits), prepared once.",
    )
    cache: CacheSpec = section(CacheSpec, "Where the prepared model lives.")


class GpuSpec(ApiModel):
    """GPU scheduling; only valid with backend: gpu."""

    count: int = Field(1, ge=1, le=16, description="GPUs per replica (the nvidia.com/gpu limit).")


class LatencySLOSpec(ApiModel):
    """The latency users may expect, which autoscaling and alerts defend."""

    p95_milliseconds: int = Field(
        500, ge=1, le=600_000, description="Target P95 latency of one rerank request, in milliseconds."
    )


REPLICAS_MIN_LE_MAX = CelRule(
    "self.min <= self.max",
    "replicas.min must be less than or equal to replicas.max: raise replicas.max or lower replicas.min",
)


class ReplicasSpec(ApiModel):
    """Bounds for the number of server pods."""

    model_config = ConfigDict(json_schema_extra=cel(REPLICAS_MIN_LE_MAX))

    min: int = Field(
        1, ge=1, le=1000, description="Minimum replicas; more than 1 also adds a PodDisruptionBudget."
    )
    max: int = Field(4, ge=1, le=1000, description="Maximum replicas the autoscaler may scale to.")

    @model_validator(mode="after")
    def _min_le_max(self) -> ReplicasSpec:
        REPLICAS_MIN_LE_MAX.require(self.min <= self.max)
        return self


class BatchingSpec(ApiModel):
    """Dynamic batching across concurrent requests (the server's token budget)."""

    max_batch_tokens: int = Field(
        0,
        ge=0,
        le=1_048_576,
        description="Token budget of one model call across requests: pairs x padded length, quadratic "
        "past 256 tokens (a longer pair runs alone). 0 = the server's default for the backend: 1024 on "
        "cpu, where calls that stay in the CPU caches run fastest, and 32768 on gpu.",
    )
    max_wait_milliseconds: int = Field(
        5,
        ge=0,
        le=1000,
        description="While the model is busy, how long the next batch waits for more requests "
        "(a request that finds the model idle runs at once).",
    )


class WarmupSpec(ApiModel):
    """Warm-up before a pod takes traffic, and how long start-up may take."""

    requests: int = Field(3, ge=0, le=1000, description="Warm-up requests per shape before /ready turns 200.")
    startup_timeout_seconds: int = Field(
        900,
        ge=30,
        le=86_400,
        description="How long a new pod may take to download, export, load and warm up the model before "
        "Kubernetes restarts it (the startupProbe budget).",
    )


class AutoscalingSpec(ApiModel):
    """Scaling on the P95 latency users feel, with in-flight requests as the leading signal."""

    enabled: bool = Field(
        True, description="Scale between replicas.min and replicas.max on latency and load."
    )
    metrics_source: Literal["auto", "keda", "prometheus-adapter"] = Field(
        "auto",
        description="How the P95 reaches the autoscaler: keda (a ScaledObject with a Prometheus trigger), "
        "prometheus-adapter (an HPA with an Object metric on the Service), or auto (keda when its CRD is "
        "installed and the operator knows the Prometheus URL, otherwise prometheus-adapter).",
    )
    slo_headroom_percent: int = Field(
        80,
        ge=10,
        le=100,
        description="Scale out when P95 exceeds this percentage of latencySLO.p95Milliseconds, before "
        "the SLO is breached.",
    )
    in_flight_per_replica: int = Field(
        8, ge=1, le=10_000, description="Target average of in-flight requests per pod (the leading signal)."
    )
    scale_down_stabilization_seconds: int = Field(
        300,
        ge=0,
        le=3600,
        description="How long load must stay low before replicas are removed; warm-up makes new pods "
        "expensive, so scale-in is deliberately slow.",
    )


class MonitoringSpec(ApiModel):
    """Prometheus Operator objects, rendered only when their CRDs exist in the cluster."""

    service_monitor: bool = Field(True, description="Render a ServiceMonitor for the metrics port.")
    prometheus_rule: bool = Field(True, description="Render a PrometheusRule with SLO and health alerts.")


# Label syntax (k8s.io/apimachinery validation): an optional DNS-subdomain prefix and "/", then a name of
# at most 63 characters. Written without backslashes so the same text is a Python and a schema pattern.
LABEL_NAME_PATTERN: Final = "([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]"
LABEL_KEY_PATTERN: Final = (
    f"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{LABEL_NAME_PATTERN}$"
)
LABEL_VALUE_PATTERN: Final = f"^({LABEL_NAME_PATTERN})?$"
MAX_LABEL_KEY_LENGTH: Final = 317
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]

#: Checked by the operator only: a CEL rule over a map's keys cannot be bounded (a structural schema gives
#: keys no maxLength), so the API server would price it as a 3 MB regex match and refuse the CRD. A bad key
#: still never reaches the cluster: the operator reports it, and the API server refuses the NetworkPolicy.
LABEL_KEY_INVALID: Final = (
    "a label selector's matchLabels key is not a valid label key (an optional DNS prefix and '/', then at "
    "most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit): use a key such "
    "as team or example.com/team"
)
REQUIREMENT_VALUES_MATCH_OPERATOR = CelRule(
    "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) "
    ": (!has(self.values) || size(self.values) == 0)",
    "a matchExpressions entry with operator In or NotIn needs values, and one with Exists or DoesNotExist "
    "has none: set values for In and NotIn, remove them for Exists and DoesNotExist",
)


def valid_label_key(key: str) -> bool:
    return len(key) <= MAX_LABEL_KEY_LENGTH and re.match(LABEL_KEY_PATTERN, key) is not None


class LabelRequirement(ApiModel):
    """One matchExpressions entry of a label selector."""

    model_config = ConfigDict(json_schema_extra=cel(REQUIREMENT_VALUES_MATCH_OPERATOR))

    key: str = Field(
        min_length=1,
        max_length=MAX_LABEL_KEY_LENGTH,
        pattern=LABEL_KEY_PATTERN,
        description="The label key the requirement is about.",
    )
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="How the label's value relates to values.",
        json_schema_extra={"maxLength": 16},  # bounds the CEL rule's cost estimate
    )
    values: list[LabelValue] = Field(
        default_factory=list,
        max_length=64,
        description="Label values; needed by In and NotIn, empty for Exists and DoesNotExist.",
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelRequirement:
        REQUIREMENT_VALUES_MATCH_OPERATOR.require(bool(self.values) == (self.operator in ("In", "NotIn")))
        return self


class LabelSelector(ApiModel):
    """A Kubernetes label selector, typed so that an invalid one is refused when the CR is applied."""

    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": 32},
        description="Labels that must all match.",
    )
    match_expressions: list[LabelRequirement] = Field(
        default_factory=list, max_length=16, description="Requirements that must all hold."
    )

    @model_validator(mode="after")
    def _keys_valid(self) -> LabelSelector:
        bad = [key for key in self.match_labels if not valid_label_key(key)]
        if bad:
            raise ValueError(f"{LABEL_KEY_INVALID} (got {bad[0]!r})")
        return self


PEER_NAMES_A_SELECTOR = CelRule(
    "has(self.namespaceSelector) || has(self.podSelector)",
    "a networkPolicy peer needs a namespaceSelector, a podSelector or both: set one of them",
)


class NetworkPeer(ApiModel):
    """Who may connect: pods matching podSelector in namespaces matching namespaceSelector."""

    model_config = ConfigDict(json_schema_extra=cel(PEER_NAMES_A_SELECTOR))

    namespace_selector: LabelSelector | None = Field(
        None, description="Namespaces whose pods may connect ({} = every namespace); empty: this namespace."
    )
    pod_selector: LabelSelector | None = Field(
        None, description="Pods that may connect ({} = all of them in the selected namespaces)."
    )

    @model_validator(mode="after")
    def _names_a_selector(self) -> NetworkPeer:
        PEER_NAMES_A_SELECTOR.require(self.namespace_selector is not None or self.pod_selector is not None)
        return self


MONITORING_NAMESPACE_PEER: Final = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
}


class NetworkPolicySpec(ApiModel):
    """Who may reach the server pods, and where they and the preparation may connect."""

    enabled: bool = Field(
        True,
        description="Render NetworkPolicies for the server pods and the preparation Job. They take effect "
        "where the cluster's network plugin enforces NetworkPolicy.",
    )
    allow_from: list[NetworkPeer] = Field(
        default_factory=list,
        max_length=32,
        description="Who may call the http port; empty: every pod of this namespace.",
    )
    metrics_from: list[NetworkPeer] = Field(
        default_factory=lambda: [NetworkPeer.model_validate(MONITORING_NAMESPACE_PEER)],
        max_length=32,
        json_schema_extra={"default": [MONITORING_NAMESPACE_PEER]},
        description="Who may scrape the metrics port (the http port serves /metrics too, to allowFrom); "
        "default: the namespace named monitoring.",
    )
    preparation_egress_ports: list[Annotated[int, Field(ge=1, le=65_535)]] = Field(
        default_factory=lambda: [443],
        max_length=16,
        json_schema_extra={"default": [443]},
        description="TCP ports the model preparation may connect to (the Hugging Face hub or its mirror), "
        "besides DNS; the server pods of a shared cache need no egress but DNS.",
    )


class AuthSpec(ApiModel):
    """API keys the server requires on its rerank routes."""

    secret_name: str | None = Field(
        None,
        max_length=253,
        description="A Secret in this namespace holding the API keys, one per line: every rerank request "
        "then needs 'Authorization: Bearer <key>'. The Secret is mounted as a file, so rotating it "
        "rotates the keys without a restart. Empty: no keys.",
    )
    key: str = Field(
        "api-keys",
        min_length=1,
        max_length=253,
        pattern="^[-._a-zA-Z0-9]+$",
        description="The key of the Secret that holds the API keys.",
    )


class RolloutSpec(ApiModel):
    """How a new version replaces the pods."""

    strategy: Literal["surge", "replace"] = Field(
        "surge",
        description="surge: a new pod warms up before an old one leaves (no capacity dip, needs room for "
        "one more pod; with backend gpu a spare GPU). replace: an old pod leaves first, then its "
        "replacement warms up (no spare GPU needed; one pod less while each one warms up, and with "
        "replicas.min 1 a gap in service).",
    )


POD_LABELS_KEEP_SELECTOR = CelRule(
    "!has(self.labels) || (!('app.kubernetes.io/name' in self.labels) "
    "&& !('app.kubernetes.io/instance' in self.labels))",
    "podTemplate.labels must not set app.kubernetes.io/name or app.kubernetes.io/instance, which select "
    "the operator's pods: use another label key",
)


class PodTemplateSpec(ApiModel):
    """Pod-level overrides that users of other operators expect."""

    model_config = ConfigDict(json_schema_extra=cel(POD_LABELS_KEEP_SELECTOR))

    annotations: dict[str, str] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": 64}, description="Extra pod annotations."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": 64}, description="Extra pod labels."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": 64},
        description="Node labels the pods must run on (e.g. a GPU node pool).",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=64,
        description="Taints the pods tolerate; backend gpu adds the nvidia.com/gpu toleration itself.",
    )
    affinity: Affinity | None = Field(
        None, description="Scheduling constraints; empty: prefer spreading replicas across nodes."
    )
    priority_class_name: str | None = Field(None, max_length=253, description="PriorityClass of the pods.")
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, max_length=16, description="Secrets for pulling a private server image."
    )
    service_account_name: str | None = Field(
        None,
        max_length=253,
        description="ServiceAccount of the pods (e.g. one bound to a private model registry).",
    )
    topology_spread_constraints: list[TopologySpreadConstraint] | None = Field(
        None,
        max_length=16,
        description="How replicas spread; empty: across zones and nodes (ScheduleAnyway) when replicas.max "
        "exceeds 1. [] turns spreading off.",
    )

    @model_validator(mode="after")
    def _keep_selector(self) -> PodTemplateSpec:
        POD_LABELS_KEEP_SELECTOR.require(not any(key in self.labels for key in SELECTOR_LABEL_KEYS))
        return self


GPU_FIELDS_NEED_GPU_BACKEND = CelRule(
    "!has(self.gpu) || self.backend == 'gpu'",
    "spec.gpu is only allowed with backend: gpu: set backend: gpu or remove spec.gpu",
)
INT8_NEEDS_CPU = CelRule(
    "!(self.backend == 'gpu' && self.model.quantization == 'int8')",
    "model.quantization int8 is a CPU optimisation (dynamic int8 runs on the CPU execution provider): "
    "use quantization: none or fp16 with backend: gpu, or backend: cpu",
)
FP16_NEEDS_GPU = CelRule(
    "!(self.backend == 'cpu' && self.model.quantization == 'fp16')",
    "model.quantization fp16 is a GPU optimisation (half precision on tensor cores): use backend: gpu, "
    "or quantization: int8 or none with backend: cpu",
)
REQUEST_TOKENS_BOUNDED = CelRule(
    f"self.maxCandidates * self.model.maxLength <= {MAX_TOKENS_PER_REQUEST}",
    f"maxCandidates x model.maxLength must be at most {MAX_TOKENS_PER_REQUEST} tokens per request: "
    "lower maxCandidates or model.maxLength",
)
ENV_NOT_MANAGED = CelRule(
    "!has(self.env) || self.env.all(e, !(e.name in ["
    + ", ".join(f"'{name}'" for name in MANAGED_ENV)
    + "]))",
    "env must not set the RERANKER_* variables the operator derives from the spec "
    "(RERANKER_MODEL comes from model.id, RERANKER_MAX_CANDIDATES from maxCandidates, ...): "
    "set the spec field instead",
)


class RerankerDeploymentSpec(ApiModel):
    """What the user wants: a model, a backend, a k cap and a latency SLO."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            GPU_FIELDS_NEED_GPU_BACKEND,
            INT8_NEEDS_CPU,
            FP16_NEEDS_GPU,
            REQUEST_TOKENS_BOUNDED,
            ENV_NOT_MANAGED,
        )
    )

    model: ModelSpec = Field(description="The cross-encoder to serve.")
    backend: Literal["cpu", "gpu"] = Field(
        "cpu", description="cpu: ONNX Runtime CPU execution provider; gpu: CUDA execution provider."
    )
    gpu: GpuSpec | None = Field(None, description="GPU scheduling; only with backend: gpu.")
    max_candidates: int = Field(
        100,
        ge=1,
        le=1000,
        description="The k cap: the most documents one request may ask to rerank. Latency grows linearly "
        "with it.",
    )
    max_candidates_policy: Literal["reject", "truncate"] = Field(
        "reject",
        description="Requests over the k cap: reject answers 413 naming the cap; truncate scores only the "
        "first maxCandidates documents and says so in a response header.",
    )
    latency_slo: LatencySLOSpec = Field(
        default_factory=LatencySLOSpec,
        alias="latencySLO",
        description="The latency objective.",
        json_schema_extra={"default": {}},
    )
    replicas: ReplicasSpec = section(ReplicasSpec, "Replica bounds.")
    batching: BatchingSpec = section(BatchingSpec, "Dynamic batching knobs.")
    warmup: WarmupSpec = section(WarmupSpec, "Warm-up and start-up budget.")
    prepare: PrepareSpec = section(PrepareSpec, "The model preparation Job (or initContainer).")
    autoscaling: AutoscalingSpec = section(AutoscalingSpec, "Autoscaling on P95 latency.")
    monitoring: MonitoringSpec = section(MonitoringSpec, "Prometheus Operator integration.")
    resources: ResourceRequirements | None = Field(
        None,
        description="Server container resources; empty: sized for the backend. The CPU limit also sets the "
        "ONNX Runtime thread count, and gpu.count sets the nvidia.com/gpu limit.",
    )
    image: str | None = Field(
        None,
        max_length=1024,
        description="Server image; empty: the operator's default CPU or GPU image for the backend.",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=128,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Extra environment variables for the server container (e.g. HF_TOKEN from a Secret).",
    )
    pod_template: PodTemplateSpec = section(PodTemplateSpec, "Pod-level overrides.")
    network_policy: NetworkPolicySpec = section(NetworkPolicySpec, "Network isolation of the pods.")
    auth: AuthSpec = section(AuthSpec, "API keys.")
    rollout: RolloutSpec = section(RolloutSpec, "How new versions replace pods.")

    @model_validator(mode="after")
    def _cross_field_rules(self) -> RerankerDeploymentSpec:
        """Every broken rule at once, as the API server lists every failed CEL rule."""
        checks = (
            (GPU_FIELDS_NEED_GPU_BACKEND, self.gpu is None or self.backend == "gpu"),
            (INT8_NEEDS_CPU, not (self.backend == "gpu" and self.model.quantization == "int8")),
            (FP16_NEEDS_GPU, not (self.backend == "cpu" and self.model.quantization == "fp16")),
            (REQUEST_TOKENS_BOUNDED, self.max_candidates * self.model.max_length <= MAX_TOKENS_PER_REQUEST),
            (ENV_NOT_MANAGED, all(item.get("name") not in MANAGED_ENV for item in self.env)),
        )
        broken = [rule.message for rule, holds in checks if not holds]
        if broken:
            raise ValueError("; ".join(broken))
        return self


class ModelStatus(ApiModel):
    """What the preparation made, read from its Job."""

    artefact: str | None = Field(None, description="The artefact directory in the cache volume.")
    digest: str | None = Field(
        None, description="sha256 over the artefact's files; every replica's /info shows the same one."
    )
    resolved_commit: str | None = Field(None, description="The hub commit model.revision resolved to.")
    size_bytes: int | None = Field(None, description="Bytes of the prepared graph, tokenizer and config.")
    preparation_seconds: int | None = Field(None, description="How long the preparation took.")


class RerankerDeploymentStatus(ApiModel):
    """What the operator observed; written by the operator only."""

    observed_generation: int | None = Field(
        None, description="The metadata.generation of the spec the status describes."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        description="Ready, Progressing, WarmedUp, ModelReady, Degraded, Autoscaling, SLOMet and "
        "SLOFeasible, following the Kubernetes API conventions.",
    )
    replicas: int | None = Field(None, description="Server pods that exist.")
    ready_replicas: int | None = Field(
        None, description="Server pods that loaded the model and finished warm-up."
    )
    endpoint: str | None = Field(None, description="In-cluster URL of the reranking service.")
    metrics_source: Literal["keda", "prometheus-adapter"] | None = Field(
        None, description="How P95 reaches the autoscaler; empty when autoscaling is off or unavailable."
    )
    p95_milliseconds: int | None = Field(
        None,
        description="P95 latency over all pods in the last 2 minutes, read from Prometheus (needs the "
        "operator's Prometheus URL); empty while idle or until metrics exist.",
    )
    model: ModelStatus | None = Field(None, description="The prepared model the pods serve.")
    k_cap_latency_milliseconds: int | None = Field(
        None,
        description="Latency of one request at the k cap and maxLength, measured by the slowest pod during "
        "warm-up and read from Prometheus; above the SLO, SLOFeasible is False.",
    )


NAME_RULE = CelRule(
    f"size(self.metadata.name) <= {naming.MAX_NAME_LENGTH} && "
    f"self.metadata.name.matches('{naming.DNS1035_LABEL_PATTERN}')",
    f"metadata.name names the Service and every other child object, so it must be a DNS-1035 label: at most "
    f"{naming.MAX_NAME_LENGTH} lowercase letters, digits and '-', starting with a letter: choose a shorter "
    "or simpler name",
)


def check_name(name: str) -> None:
    """The Python twin of NAME_RULE, for specs that did not pass the API server (render, old CRDs)."""
    NAME_RULE.require(
        len(name) <= naming.MAX_NAME_LENGTH and re.match(naming.DNS1035_LABEL_PATTERN, name) is not None
    )


class InvalidSpecError(ValueError):
    """A spec the operator cannot act on; the message says what to fix."""


def parse_spec(spec: Mapping[str, Any]) -> RerankerDeploymentSpec:
    """Validate a CR's spec, turning pydantic's errors into one message per problem with its field path."""
    try:
        return RerankerDeploymentSpec.model_validate(dict(spec))
    except ValidationError as exc:
        raise InvalidSpecError(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        path = ".".join(["spec", *(str(part) for part in error["loc"])])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{path}: {message}")
    return "; ".join(problems)
