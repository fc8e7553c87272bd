"""Names, labels and ports shared by the API, the builders, the client and the tests.

Every child object is named after its RerankerDeployment and carries the same
`app.kubernetes.io/*` labels, so one module decides them and everything else
(builders, pruning, status, tests, the chart) imports them instead of retyping strings.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

GROUP: Final = "kube-reranker.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "RerankerDeployment"
PLURAL: Final = "rerankerdeployments"
SINGULAR: Final = "rerankerdeployment"
SHORT_NAMES: Final = ("rrd",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"

APP_NAME: Final = "reranker-server"
COMPONENT: Final = "reranker"
PART_OF: Final = "kube-reranker"
MANAGED_BY: Final = "reranker-operator"

# The operator's own annotations and kopf's bookkeeping live under our group, not kopf's.
ANNOTATION_PREFIX: Final = GROUP
FIELD_MANAGER: Final = "reranker-operator"

CONTAINER_NAME: Final = "reranker-server"
HTTP_PORT_NAME: Final = "http"
HTTP_PORT: Final = 8080
METRICS_PORT_NAME: Final = "metrics"
METRICS_PORT: Final = 9090

# A Service name is a DNS-1035 label: the strictest name rule among the children.
MAX_NAME_LENGTH: Final = 63
DNS1035_LABEL_PATTERN: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


def child_name(cr_name: str) -> str:
    """Every child shares the CR's name, so `kubectl get deploy,svc,hpa <name>` finds them all."""
    return cr_name


def selector_labels(cr_name: str) -> dict[str, str]:
    """The immutable Deployment selector: name + instance only, so other labels may change freely."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: cr_name}


def labels(cr_name: str) -> dict[str, str]:
    """The full recommended label set carried by every child object and every pod."""
    return {
        **selector_labels(cr_name),
        LABEL_COMPONENT: COMPONENT,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def ownership_selector(cr_name: str) -> dict[str, str]:
    """Labels that find the children of one CR among everything else in its namespace."""
    return {LABEL_INSTANCE: cr_name, LABEL_MANAGED_BY: MANAGED_BY}


def endpoint(cr_name: str, namespace: str) -> str:
    """The in-cluster URL users put into their RAG pipeline."""
    return f"http://{child_name(cr_name)}.{namespace}.svc:{HTTP_PORT}"


# Model preparation: one Job per (cache claim, recipe), one artefact directory per recipe.
PREPARE_CONTAINER_NAME: Final = "prepare"
LABEL_RECIPE: Final = f"{GROUP}/recipe"
LABEL_CLAIM: Final = f"{GROUP}/claim"
ANNOTATION_ARTEFACT: Final = f"{GROUP}/artefact"
ARTEFACTS_DIR: Final = "artefacts"
#: Bumped when the preparation's output changes, so old artefacts are never served by a new server.
ARTEFACT_FORMAT: Final = "1"


def recipe_digest(model: str, revision: str, backend: str, quantization: str) -> str:
    """What changes the prepared graph, hashed: equal recipes share one artefact and one Job."""
    text = "\n".join((ARTEFACT_FORMAT, model, revision, backend, quantization))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def artefact_dir_name(model: str, digest: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", model.rsplit("/", 1)[-1].lower()).strip("-")[:40] or "model"
    return f"{slug}-{digest}"


def prepare_job_name(claim: str, digest: str) -> str:
    """Shared by every RerankerDeployment of the namespace that prepares this recipe into this claim."""
    unique = hashlib.sha256(f"{claim}/{digest}".encode()).hexdigest()[:10]
    return f"rr-prepare-{unique}"


def cache_claim_name(storage_class: str) -> str:
    """The claim the operator creates for a storage class: one per namespace and class."""
    slug = re.sub(r"[^a-z0-9-]+", "-", storage_class.lower()).strip("-")[:30] or "default"
    return f"rr-models-{slug}"


def preparation_labels(digest: str) -> dict[str, str]:
    """Labels of shared preparation objects: no instance label, they belong to every user."""
    return {
        LABEL_NAME: "reranker-prepare",
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_RECIPE: digest,
    }
