"""Run the real helm binary over the chart and validate what it renders.

Pure helpers shared by the chart tests: rendering (helm template), schema validation of custom
resources against their CRDs (kubernetes-validate has schemas for built-in kinds only), and the
Kubernetes versions the chart supports (every version kubernetes-validate ships from Chart.yaml's
kubeVersion floor on).
"""

from __future__ import annotations

import copy
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema
import kubernetes_validate
import referencing
import yaml
from kubernetes_validate.utils import all_versions, schema_contents
from packaging.version import Version

REPO: Final = Path(__file__).resolve().parents[2]
CHART: Final = REPO / "charts" / "kube-reranker"
HELM: Final = REPO / "build" / "tools" / "bin" / "helm"
CI_VALUES: Final = tuple(sorted((CHART / "ci").glob("*-values.yaml")))
RELEASE: Final = "rr"
NAMESPACE: Final = "reranker-system"
INSTALL_HINT: Final = "helm is missing: run `bash scripts/install-tools.sh` (or `make tools`)"
OBJECT_META_REF: Final = (
    "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
)


class HelmError(Exception):
    """helm exited non-zero; the message is helm's own stderr, as a user would see it."""


def helm(*args: str | Path) -> str:
    """Run helm and return stdout; raise HelmError with helm's stderr when it fails."""
    result = subprocess.run(
        [str(HELM), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise HelmError(result.stderr.strip())
    return result.stdout


@cache
def _render_text(values_files: tuple[Path, ...], settings: tuple[str, ...], extra: tuple[str, ...]) -> str:
    args: list[str | Path] = ["template", RELEASE, CHART, "--namespace", NAMESPACE]
    for values_file in values_files:
        args += ["--values", values_file]
    for setting in settings:
        args += ["--set", setting]
    return helm(*args, *extra)


def render(*values_files: Path, settings: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> list[dict]:
    """Render the chart like `helm install` would and return the objects (deep copies, safe to edit)."""
    text = _render_text(tuple(values_files), settings, extra)
    return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def render_text(*values_files: Path, settings: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> str:
    """The raw rendered YAML (comments included)."""
    return _render_text(tuple(values_files), settings, extra)


def template_text(template: str, *values_files: Path) -> str:
    """One template's rendered YAML, for what parsing drops: its comments and their order."""
    return render_text(*values_files, extra=("--show-only", template))


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    """The single object of this kind (and name); fails loudly when there is none or several."""
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, rendered: {[kn(o) for o in objects]}"
    return found[0]


def kn(obj: dict) -> str:
    """kind/namespace/name, for messages and test ids."""
    meta = obj["metadata"]
    return "/".join(filter(None, (obj["kind"], meta.get("namespace"), meta["name"])))


def kube_floor() -> Version:
    """The lowest Kubernetes version Chart.yaml's kubeVersion (">=X.Y.Z-0") admits."""
    constraint = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    match = re.fullmatch(r">=\s*(\d+\.\d+)\.\d+(-0)?", constraint)
    assert match, f"kubeVersion {constraint!r} is not a plain >= floor"
    return Version(match.group(1))


def supported_kube_versions() -> list[str]:
    """Every Kubernetes version kubernetes-validate has schemas for, from the chart's floor on."""
    return sorted({v for v in all_versions() if Version(v) >= kube_floor()}, key=Version)


def crd_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader) if doc]


@cache
def chart_crds() -> dict[tuple[str, str], dict]:
    """(group, kind) -> CRD, from every file in the chart's crds/ directory (read once; do not mutate)."""
    crds = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        for crd in crd_documents(path):
            crds[(crd["spec"]["group"], crd["spec"]["names"]["kind"])] = crd
    return crds


def strict_schema(schema: Any) -> Any:
    """Reject unknown fields like `kubectl apply` (server-side field validation Strict) does.

    A structural CRD schema prunes unknown fields silently unless the client asks for strict field
    validation, which kubectl does by default; so every object with declared properties that does not
    preserve unknown fields gets additionalProperties: false.
    """
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: strict_schema(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


def validate_custom_resource(obj: dict, crd: dict, kube_version: str) -> None:
    """Validate a custom resource against its CRD's served schema and its metadata against ObjectMeta."""
    api_version = obj["apiVersion"]
    group, _, version = api_version.rpartition("/")
    assert group == crd["spec"]["group"], f"{kn(obj)}: apiVersion group {group} is not {crd['spec']['group']}"
    served = {v["name"]: v for v in crd["spec"]["versions"] if v["served"]}
    assert version in served, f"{kn(obj)}: version {version} is not served by {crd['metadata']['name']}"
    schema = strict_schema(copy.deepcopy(served[version]["schema"]["openAPIV3Schema"]))
    schema.setdefault("properties", {})
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
    schema["properties"]["metadata"] = {"$ref": OBJECT_META_REF}
    schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
    schema["additionalProperties"] = False
    namespaced = crd["spec"]["scope"] == "Namespaced"
    assert ("namespace" in obj["metadata"]) == namespaced, f"{kn(obj)}: namespace does not fit its scope"
    jsonschema.Draft202012Validator(schema, registry=_definitions_registry(kube_version)).validate(obj)


def validate_object_meta(obj: dict, kube_version: str) -> None:
    """Validate only metadata, for kinds whose upstream schema is not available offline."""
    schema = {"$ref": OBJECT_META_REF}
    validator = jsonschema.Draft202012Validator(schema, registry=_definitions_registry(kube_version))
    validator.validate(obj["metadata"])


@cache
def _definitions_registry(kube_version: str) -> referencing.Registry:
    """kubernetes-validate's strict definitions for this version, as a referencing registry."""
    schema_version = kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}}, kube_version, strict=True
    )
    full = next(v for v in all_versions() if v.startswith(f"{schema_version}."))
    definitions = schema_contents(
        f"kubernetes-json-schema/v{full}-local-strict/_definitions.json", kube_version
    )
    return referencing.Resource.from_contents(definitions) @ referencing.Registry()
