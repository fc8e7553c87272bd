"""Operator settings: one typed object, built once at the edge from the environment.

The Helm chart sets these variables; `reranker-operator run` turns them into kopf's CLI
arguments and the startup handler stores the same object in kopf's memo for the handlers.
Nothing else in the package reads the environment.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from importlib.metadata import version
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reranker_operator.tenancy import Tenancy

ENV_PREFIX: Final = "RERANKER_OPERATOR_"
#: The chart's livenessProbe asks this port; a host-network run picks another with LIVENESS_PORT.
DEFAULT_LIVENESS_PORT: Final = 8080
# The images' tag is the package version, which is also the chart's appVersion: one place.
IMAGE_TAG: Final = version("kube-reranker")
DEFAULT_SERVER_IMAGE: Final = f"kube-reranker/reranker-server:{IMAGE_TAG}"
DEFAULT_SERVER_GPU_IMAGE: Final = f"kube-reranker/reranker-server-gpu:{IMAGE_TAG}"
DEFAULT_EXPORT_IMAGE: Final = f"kube-reranker/reranker-export:{IMAGE_TAG}"
#: An image reference: repository, then a tag, a digest, or both (`repo:tag@sha256:...`).
IMAGE_PATTERN: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9._/:]*[a-z0-9])?(:[A-Za-z0-9_][-A-Za-z0-9_.]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS: Final = frozenset({"0", "false", "no", "off"})


class ConfigError(ValueError):
    """An operator setting that cannot be used; the message names the variable."""


class OperatorConfig(BaseModel):
    """Everything the operator process needs to know about its environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespaces: tuple[str, ...] = Field((), description="Namespaces to watch; empty: the whole cluster.")
    peering: str | None = Field(None, description="kopf peering name for several replicas; None: standalone.")
    pod_id: str | None = Field(
        None, description="This replica's name among its peers (POD_ID, the pod name; kopf reads it too)."
    )
    server_image: str = Field(DEFAULT_SERVER_IMAGE, description="Server image when a spec names none.")
    server_gpu_image: str = Field(DEFAULT_SERVER_GPU_IMAGE, description="The same for backend: gpu.")
    export_image: str = Field(DEFAULT_EXPORT_IMAGE, description="The image model preparation runs in.")
    prometheus_url: str | None = Field(
        None, description="Prometheus HTTP API base URL, for KEDA and SLO status."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text for people, json for log pipelines."
    )
    resync_seconds: int = Field(300, ge=10, le=86_400, description="How often every CR is re-reconciled.")
    metrics_port: int | None = Field(None, ge=1, le=65_535, description="Port of the operator's /metrics.")
    liveness_port: int = Field(
        DEFAULT_LIVENESS_PORT, ge=1, le=65_535, description="Port of kopf's /healthz liveness endpoint."
    )
    kubeconfig: str | None = Field(None, description="Kubeconfig path; None: in-cluster or ~/.kube/config.")
    in_cluster: bool = Field(False, description="Running in a pod with a service account token.")
    allowed_image_prefixes: tuple[str, ...] = Field(
        (), description="Prefixes spec.image must start with (comma-separated); empty: any image."
    )
    allow_service_account: bool = Field(
        True, description="Whether spec.podTemplate.serviceAccountName may be set."
    )
    allow_secret_env: bool = Field(True, description="Whether spec.env may read Secrets (secretKeyRef).")

    @field_validator("server_image", "server_gpu_image", "export_image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        if not IMAGE_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not an image reference: repository[:tag][@sha256:<64 hex digits>]"
            )
        return value

    @property
    def tenancy(self) -> Tenancy:
        return Tenancy(self.allowed_image_prefixes, self.allow_service_account, self.allow_secret_env)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def liveness_endpoint(self) -> str:
        return f"http://0.0.0.0:{self.liveness_port}/healthz"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, default_pod_id: str | None = None) -> OperatorConfig:
        """Each setting from its variable (ENV_NAMES); unset or empty ones keep their defaults."""
        given = {field: environ.get(name, "").strip() for field, name in ENV_NAMES.items()}
        values: dict[str, object] = {field: value for field, value in given.items() if value}
        for field in LIST_SETTINGS:
            values[field] = tuple(item.strip() for item in given[field].split(",") if item.strip())
        for field in SWITCH_SETTINGS:
            values[field] = _switch(given[field] or None, ENV_NAMES[field])
        values["pod_id"] = given["pod_id"] or default_pod_id
        values["in_cluster"] = bool(given["in_cluster"])
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_NAMES.get(str(error['loc'][0]), str(error['loc'][0]))}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise ConfigError(problems) from None


#: The variable each setting is read from (from_env's mapping), for `run --help`.
ENV_NAMES: Final = {
    "namespaces": f"{ENV_PREFIX}NAMESPACES",
    "peering": f"{ENV_PREFIX}PEERING",
    "pod_id": "POD_ID",
    "server_image": f"{ENV_PREFIX}SERVER_IMAGE",
    "server_gpu_image": f"{ENV_PREFIX}SERVER_GPU_IMAGE",
    "export_image": f"{ENV_PREFIX}EXPORT_IMAGE",
    "prometheus_url": f"{ENV_PREFIX}PROMETHEUS_URL",
    "log_format": f"{ENV_PREFIX}LOG_FORMAT",
    "resync_seconds": f"{ENV_PREFIX}RESYNC_SECONDS",
    "metrics_port": f"{ENV_PREFIX}METRICS_PORT",
    "liveness_port": f"{ENV_PREFIX}LIVENESS_PORT",
    "kubeconfig": "KUBECONFIG",
    "in_cluster": "KUBERNETES_SERVICE_HOST",
    "allowed_image_prefixes": f"{ENV_PREFIX}ALLOWED_IMAGE_PREFIXES",
    "allow_service_account": f"{ENV_PREFIX}ALLOW_SERVICE_ACCOUNT",
    "allow_secret_env": f"{ENV_PREFIX}ALLOW_SECRET_ENV",
}


#: Comma-separated lists and true/false switches, parsed before validation.
LIST_SETTINGS: Final = ("namespaces", "allowed_image_prefixes")
SWITCH_SETTINGS: Final = ("allow_service_account", "allow_secret_env")


def settings_help() -> str:
    """Every setting with its variable, default and meaning: the epilog of `reranker-operator run --help`."""
    lines = ["settings (environment variables; the chart sets them):"]
    for field, info in OperatorConfig.model_fields.items():
        default = info.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        meaning = info.description or field.replace("_", " ")
        lines.append(
            f"  {ENV_NAMES[field]:<44} {meaning} [default: {shown if shown not in ('', None) else 'unset'}]"
        )
    return "\n".join(lines)


def _switch(value: str | None, variable: str) -> bool:
    """Unset means allowed; anything but a clear yes or no is an error, never a silent default."""
    if value is None or value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise ConfigError(f"{variable}: expected true or false, got {value!r}")


def load() -> OperatorConfig:
    """Outside a pod (no POD_ID) the host name and process id tell two local replicas apart."""
    return OperatorConfig.from_env(os.environ, default_pod_id=f"{socket.gethostname()}-{os.getpid()}")
