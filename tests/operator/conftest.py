"""Fixtures of the operator tests: example CRs, a kmock Kubernetes emulator, the real kopf operator.

The operator runs in the test's own event loop (looptime compacts kopf's timers and delays to
near-zero wall-clock time) against kmock's KubernetesEmulator over real HTTP. kmock records
every request; `running_operator` fails the test when the operator made one that
reranker_operator.permissions does not cover, so the declared RBAC cannot fall behind the code.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Final

import kmock
import kopf
import pytest
import reranker_operator.handlers  # noqa: F401  (registers the handlers in kopf's default registry)
import yaml
from reranker_operator import naming, permissions

ROOT: Final = Path(__file__).resolve().parents[2]
EXAMPLES: Final = sorted((ROOT / "examples").glob("*.yaml"))
RESOURCES_DIR: Final = Path(__file__).parent / "resources"
NAMESPACE: Final = "search"
CR_RESOURCE: Final = f"{naming.GROUP}/{naming.VERSION}/{naming.PLURAL}"
CR_PATH: Final = f"/apis/{naming.GROUP}/{naming.VERSION}/namespaces/{NAMESPACE}/{naming.PLURAL}"
DEPLOYMENTS: Final = "apps/v1/deployments"
ALL_VERBS: Final = {"get", "list", "watch", "create", "patch", "delete"}
# Requests the tests make through kmock's own client carry its user agent; the operator's do not.
TEST_CLIENT_PREFIX: Final = "kmock/"
VERBS: Final = {
    kmock.action.LIST: "list",
    kmock.action.WATCH: "watch",
    kmock.action.FETCH: "get",
    kmock.action.CREATE: "create",
    kmock.action.UPDATE: "patch",
    kmock.action.DELETE: "delete",
}


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.fixture(params=EXAMPLES, ids=[path.stem for path in EXAMPLES])
def example(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Each manifest in examples/, as users apply it."""
    return load_yaml(request.param)


@pytest.fixture
def make_cr() -> Callable[..., dict[str, Any]]:
    """A RerankerDeployment as the API server stores it: with uid, generation and resourceVersion."""

    def make(name: str = "rr", spec: Mapping[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
        return {
            "apiVersion": naming.API_VERSION,
            "kind": naming.KIND,
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "uid": str(uuid.uuid4()),
                "generation": generation,
                "resourceVersion": "1",
            },
            "spec": copy.deepcopy(dict(spec)) if spec is not None else {"model": {"id": "org/model"}},
        }

    return make


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings as the chart leaves them by default: cluster-wide, standalone, no Prometheus."""
    for name in ("NAMESPACES", "PEERING", "SERVER_IMAGE", "SERVER_GPU_IMAGE", "PROMETHEUS_URL", "LOG_FORMAT"):
        monkeypatch.delenv(f"RERANKER_OPERATOR_{name}", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def emulate_cluster(emulator: kmock.KubernetesEmulator, kubeconfig: Path) -> None:
    """Serve the built-in APIs and our CRD's API, and write a kubeconfig pointing at the emulator."""
    emulator.resources.load_bundled()
    emulator.resources[CR_RESOURCE] = kmock.ResourceInfo(
        kind=naming.KIND,
        singular=naming.SINGULAR,
        namespaced=True,
        shortnames=set(naming.SHORT_NAMES),
        verbs=ALL_VERBS,
        subresources={"status"},
    )
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "kmock",
                "clusters": [{"name": "kmock", "cluster": {"server": str(emulator.url).rstrip("/")}}],
                "users": [{"name": "kmock", "user": {"token": "test-token"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
            }
        )
    )


@pytest.fixture
def cluster(
    kmock: kmock.KubernetesEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operator_env: None
) -> kmock.KubernetesEmulator:
    """The emulator serving the built-in APIs and our CRD's API, and a kubeconfig pointing at it."""
    emulate_cluster(kmock, tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    return kmock


def serve_optional_apis(cluster: kmock.KubernetesEmulator, *, prometheus_operator: bool, keda: bool) -> None:
    """Emulate the Prometheus Operator's and KEDA's CRDs being installed."""
    if prometheus_operator:
        for plural, kind in (("servicemonitors", "ServiceMonitor"), ("prometheusrules", "PrometheusRule")):
            cluster.resources[f"monitoring.coreos.com/v1/{plural}"] = cluster.ResourceInfo(
                kind=kind, namespaced=True, verbs=ALL_VERBS
            )
    if keda:
        cluster.resources["keda.sh/v1alpha1/scaledobjects"] = cluster.ResourceInfo(
            kind="ScaledObject", namespaced=True, verbs=ALL_VERBS, subresources={"status"}
        )


def operator_requests(cluster: kmock.KubernetesEmulator) -> list[Any]:
    return [
        request
        for request in cluster
        if not request.headers.get("User-Agent", "").startswith(TEST_CLIENT_PREFIX)
    ]


def request_permission(request: Any) -> tuple[str, str, str] | None:
    """(apiGroup, resource[/subresource], verb) of a request; None for discovery URLs (no RBAC needed)."""
    resource = request.resource
    if resource is None or not resource.plural:
        return None
    plural = f"{resource.plural}/{request.subresource}" if request.subresource else resource.plural
    verb = VERBS.get(request.action) or request.method.value.lower()
    return resource.group, plural, verb


def uncovered_requests(cluster: kmock.KubernetesEmulator, *, clusterwide: bool, peering: bool) -> set[tuple]:
    declared = permissions.required(clusterwide=clusterwide, peering=peering)
    made = {request_permission(request) for request in operator_requests(cluster)} - {None}
    return {needed for needed in made if not permissions.covers(declared, *needed)}


def child_writes(cluster: kmock.KubernetesEmulator) -> list[tuple[str, str, str]]:
    """(verb, resource, name) of every write the operator made to a child object."""
    made = []
    for request in operator_requests(cluster):
        needed = request_permission(request)
        if needed is None or needed[2] not in {"create", "patch", "delete"}:
            continue
        if needed[1].startswith(naming.PLURAL) or needed[1] == "events":
            continue
        name = request.name or (request.data or {}).get("metadata", {}).get("name")
        made.append((needed[2], needed[1], name))
    return made


async def eventually(predicate: Callable[[], Any], *, within: float = 60.0, step: float = 0.5) -> Any:
    """Wait (in loop time, which looptime compacts) until `predicate()` is truthy; fail after `within`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not (result := predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"not true within {within} s: {predicate.__doc__ or predicate}")
        await asyncio.sleep(step)
    return result


@pytest.fixture
def running_operator(
    cluster: kmock.KubernetesEmulator,
) -> Callable[..., contextlib.AbstractAsyncContextManager[None]]:
    """Run the real kopf operator with our handlers; on exit, stop it and check the RBAC coverage."""

    @contextlib.asynccontextmanager
    async def run(
        *, peering: str | None = None, pod_id: str | None = None, priority: int | None = None
    ) -> AsyncIterator[None]:
        """`pod_id` and `priority` make one of several peered replicas, as `reranker-operator run` would."""
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            kopf.operator(
                clusterwide=True,
                standalone=peering is None,
                peering_name=peering,
                identity=pod_id,
                priority=priority,
                settings=kopf.OperatorSettings(),
                stop_flag=stop,
                ready_flag=ready,
            )
        )
        try:
            await asyncio.wait_for(ready.wait(), timeout=30)
            await eventually(lambda: _watching(cluster), within=30)
            yield
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=60)
        missing = uncovered_requests(cluster, clusterwide=True, peering=peering is not None)
        assert not missing, f"requests not covered by reranker_operator.permissions: {sorted(missing)}"

    return run


def _watching(cluster: kmock.KubernetesEmulator) -> bool:
    """kopf watches RerankerDeployments and the Deployments they own."""
    watched = {
        (request.resource.group, request.resource.plural)
        for request in operator_requests(cluster)
        if request.action == kmock.action.WATCH and request.resource is not None
    }
    return {(naming.GROUP, naming.PLURAL), ("apps", "deployments")} <= watched


def live(cluster: kmock.KubernetesEmulator, resource: str, name: str) -> dict[str, Any] | None:
    """The stored object, or None when it does not exist (or was deleted)."""
    try:
        obj = cluster.objects[resource, NAMESPACE, name]
    except KeyError:
        return None
    return None if obj.deleted else copy.deepcopy(obj.raw)


def children_of(cluster: kmock.KubernetesEmulator, name: str) -> dict[str, dict[str, Any]]:
    """The live children of a CR (same name, other kinds), keyed by kind."""
    found = {}
    for (resource, namespace, obj_name), obj in cluster.objects.items():
        if (
            (namespace, obj_name) == (NAMESPACE, name)
            and resource.plural != naming.PLURAL
            and not obj.deleted
        ):
            body = copy.deepcopy(obj.raw)
            found[body["kind"]] = body
    return found


def cr_status(cluster: kmock.KubernetesEmulator, name: str) -> dict[str, Any]:
    return (live(cluster, CR_RESOURCE, name) or {}).get("status") or {}


def condition(cluster: kmock.KubernetesEmulator, name: str, kind: str) -> dict[str, Any]:
    """One status condition of a CR ({} while absent)."""
    conditions = cr_status(cluster, name).get("conditions") or ()
    return next((item for item in conditions if item["type"] == kind), {})


def container_env(deployment: Mapping[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item.get("value") for item in container["env"]}


def pytest_configure(config: pytest.Config) -> None:
    # kmock 0.8 reads its bundled resource list with a deprecated importlib call; not our code.
    config.addinivalue_line("filterwarnings", "ignore:read_binary is deprecated:DeprecationWarning")
