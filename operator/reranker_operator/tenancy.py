"""Tenant guardrails a cluster admin sets on the operator: which images, service accounts and Secrets
a RerankerDeployment author may use.

Whoever may create a RerankerDeployment may otherwise run any image under any ServiceAccount of the
namespace and read any of its Secrets through `env`. The operator refuses a spec that breaks a rule
(Degraded, reason PolicyViolation, nothing applied); the chart's opt-in ValidatingAdmissionPolicy
enforces the same rules at admission time, and a test evaluates its CEL against these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from reranker_operator.api import InvalidSpecError, RerankerDeploymentSpec

POLICY_VIOLATION: Final = "PolicyViolation"
#: Characters after which an image prefix ends (a prefix "registry/team" must not admit "registry/team-x").
PREFIX_BOUNDARIES: Final = ("/", ":", "@")


@dataclass(frozen=True)
class Tenancy:
    """What RerankerDeployment authors may set; the defaults restrict nothing (one trusted team)."""

    allowed_image_prefixes: tuple[str, ...] = ()
    allow_service_account: bool = True
    allow_secret_env: bool = True


class PolicyViolationError(InvalidSpecError):
    """The spec is valid but breaks a rule the cluster admin set; the message names the rule."""


def image_allowed(image: str, prefixes: Iterable[str]) -> bool:
    """A prefix ending in '/', ':' or '@' admits what follows; otherwise only a whole path segment."""
    for prefix in prefixes:
        if prefix.endswith(PREFIX_BOUNDARIES):
            if image.startswith(prefix):
                return True
        elif image == prefix or any(image.startswith(prefix + boundary) for boundary in PREFIX_BOUNDARIES):
            return True
    return False


def violations(spec: RerankerDeploymentSpec, tenancy: Tenancy) -> list[str]:
    found = []
    prefixes = tenancy.allowed_image_prefixes
    if prefixes and spec.image and not image_allowed(spec.image, prefixes):
        found.append(
            f"spec.image {spec.image} is not under an allowed prefix ({', '.join(prefixes)}; the operator's "
            "RERANKER_OPERATOR_ALLOWED_IMAGE_PREFIXES): use an allowed image, or leave spec.image empty"
        )
    if not tenancy.allow_service_account and spec.pod_template.service_account_name:
        found.append(
            "spec.podTemplate.serviceAccountName may not be set in this cluster "
            "(RERANKER_OPERATOR_ALLOW_SERVICE_ACCOUNT is false): remove it"
        )
    if not tenancy.allow_secret_env:
        secret_env = [
            item.get("name", "?") for item in spec.env if "secretKeyRef" in (item.get("valueFrom") or {})
        ]
        if secret_env:
            found.append(
                f"spec.env may not read Secrets in this cluster ({', '.join(secret_env)}; "
                "RERANKER_OPERATOR_ALLOW_SECRET_ENV is false): remove the secretKeyRef"
            )
        # The API-key Secret is mounted into the server container: an image of the tenant's own could
        # read any Secret it names. The operator's server image reads it only as keys.
        if spec.auth.secret_name and spec.image:
            found.append(
                "spec.auth.secretName with a spec.image of your own may not be used in this cluster "
                "(RERANKER_OPERATOR_ALLOW_SECRET_ENV is false): leave spec.image empty, so the operator's "
                "server image reads the Secret only as API keys"
            )
    return found


def check(spec: RerankerDeploymentSpec, tenancy: Tenancy) -> None:
    found = violations(spec, tenancy)
    if found:
        raise PolicyViolationError("; ".join(found))
