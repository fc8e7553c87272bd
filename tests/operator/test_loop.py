"""The real kopf operator against kmock's Kubernetes emulator: what a user sees in the cluster.

Each test starts the operator with `running_operator`, which also fails the test when the
operator made a request that reranker_operator.permissions does not declare.
"""

from __future__ import annotations

import asyncio
import copy

import pytest
from reranker_operator import cli, config, naming

from tests.operator.conftest import (
    CR_PATH,
    CR_RESOURCE,
    DEPLOYMENTS,
    NAMESPACE,
    child_writes,
    children_of,
    condition,
    container_env,
    cr_status,
    eventually,
    live,
    operator_requests,
    serve_optional_apis,
)

pytestmark = [pytest.mark.looptime, pytest.mark.timeout(120)]

MINILM = {"model": {"id": "cross-encoder/ms-marco-MiniLM-L-6-v2"}, "replicas": {"min": 2, "max": 4}}


async def create(cluster, cr) -> None:
    response = await cluster.post(CR_PATH, json=cr)
    assert response.status == 200


async def change_spec(cluster, name: str, spec: dict, generation: int) -> None:
    """What `kubectl apply` of a changed spec does: a new spec and a bumped generation."""
    await cluster.patch(f"{CR_PATH}/{name}", json={"metadata": {"generation": generation}, "spec": spec})


async def set_deployment_status(cluster, name: str, status: dict) -> None:
    """What the Deployment controller does as pods start, warm up and become ready."""
    await cluster.patch(
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}/status", json={"status": status}
    )


async def scale_deployment(cluster, name: str, replicas: int) -> None:
    await cluster.patch(
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}", json={"spec": {"replicas": replicas}}
    )


async def start_pod(cluster, cr_name: str, status: dict) -> None:
    """What the ReplicaSet controller, scheduler and kubelet do: a labelled pod with a status."""
    labels = {**naming.labels(cr_name), "pod-template-hash": "5d8f"}
    metadata = {"name": f"{cr_name}-5d8f-x2", "namespace": NAMESPACE, "labels": labels}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata}
    await cluster.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json={**pod, "status": status})


async def test_a_new_rerankerdeployment_gets_owned_children(cluster, running_operator, make_cr):
    cr = make_cr("minilm", MINILM)
    async with running_operator():
        await create(cluster, cr)
        children = await eventually(
            lambda: len(children_of(cluster, "minilm")) == 5 and children_of(cluster, "minilm")
        )
    assert set(children) == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    for child in children.values():
        assert child["metadata"]["labels"][naming.LABEL_INSTANCE] == "minilm"
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (naming.KIND, "minilm", cr["metadata"]["uid"])
        assert owner["controller"] is True
    assert container_env(children["Deployment"])["RERANKER_MODEL"] == "cross-encoder/ms-marco-MiniLM-L-6-v2"


async def test_status_reports_endpoint_generation_and_conditions(cluster, running_operator, make_cr):
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: cr_status(cluster, "minilm").get("observedGeneration") == 1)
    status = cr_status(cluster, "minilm")
    assert status["endpoint"] == f"http://minilm.{NAMESPACE}.svc:8080"
    assert status["metricsSource"] == "prometheus-adapter"
    assert [item["type"] for item in status["conditions"]] == [
        "Ready",
        "Progressing",
        "WarmedUp",
        "ModelReady",
        "Degraded",
        "Autoscaling",
    ]
    assert condition(cluster, "minilm", "Ready")["status"] == "False"
    assert condition(cluster, "minilm", "Degraded")["status"] == "False"
    assert "phase" not in status
    assert not any(key.startswith("rerankerdeployment_") or key == "kopf" for key in status)


async def test_ready_pods_make_the_rerankerdeployment_ready(cluster, running_operator, make_cr):
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: live(cluster, DEPLOYMENTS, "minilm"))
        await scale_deployment(cluster, "minilm", 2)  # what the HPA does for replicas.min: 2
        await set_deployment_status(
            cluster,
            "minilm",
            {
                "observedGeneration": 1,
                "replicas": 2,
                "readyReplicas": 1,
                "updatedReplicas": 2,
                "availableReplicas": 1,
            },
        )
        await eventually(lambda: condition(cluster, "minilm", "Ready").get("status") == "True")
        assert condition(cluster, "minilm", "WarmedUp")["reason"] == "WarmingUp"
        await set_deployment_status(cluster, "minilm", {"readyReplicas": 2, "availableReplicas": 2})
        await eventually(lambda: condition(cluster, "minilm", "WarmedUp").get("status") == "True")
    assert cr_status(cluster, "minilm")["readyReplicas"] == 2
    assert condition(cluster, "minilm", "Progressing")["reason"] == "RolloutComplete"


async def test_a_stuck_rollout_marks_the_rerankerdeployment_degraded(cluster, running_operator, make_cr):
    message = 'ReplicaSet "minilm-7d9f" has timed out progressing.'
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: live(cluster, DEPLOYMENTS, "minilm"))
        await set_deployment_status(
            cluster,
            "minilm",
            {
                "replicas": 1,
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": message,
                    }
                ],
            },
        )
        await eventually(lambda: condition(cluster, "minilm", "Degraded").get("status") == "True")
    assert condition(cluster, "minilm", "Degraded")["reason"] == "ProgressDeadlineExceeded"
    assert condition(cluster, "minilm", "Degraded")["message"] == message


async def test_a_spec_change_rolls_the_deployment_without_dropping_capacity(
    cluster, running_operator, make_cr
):
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: live(cluster, DEPLOYMENTS, "minilm"))
        await change_spec(cluster, "minilm", {"maxCandidates": 40, "model": {"revision": "v2"}}, generation=2)
        await eventually(
            lambda: container_env(live(cluster, DEPLOYMENTS, "minilm"))["RERANKER_MAX_CANDIDATES"] == "40"
        )
        await eventually(lambda: cr_status(cluster, "minilm").get("observedGeneration") == 2)
    deployment = live(cluster, DEPLOYMENTS, "minilm")
    assert container_env(deployment)["RERANKER_REVISION"] == "v2"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


async def test_a_restarted_operator_resumes_without_writing_anything(cluster, running_operator, make_cr):
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: cr_status(cluster, "minilm").get("observedGeneration") == 1)
    writes_before = child_writes(cluster)
    async with running_operator():
        # Long enough (in compacted loop time) for the resume handler and two resync timers.
        await asyncio.sleep(700)
    assert child_writes(cluster) == writes_before
    assert len(children_of(cluster, "minilm")) == 5


async def test_the_resync_recreates_a_child_deleted_behind_the_operators_back(
    cluster, running_operator, make_cr, monkeypatch
):
    monkeypatch.setenv("RERANKER_OPERATOR_RESYNC_SECONDS", "60")
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: "Service" in children_of(cluster, "minilm"))
        await cluster.delete(f"/api/v1/namespaces/{NAMESPACE}/services/minilm")
        assert "Service" not in children_of(cluster, "minilm")
        await eventually(lambda: "Service" in children_of(cluster, "minilm"), within=120)
    assert child_writes(cluster).count(("create", "services", "minilm")) == 2


async def test_deleting_a_rerankerdeployment_is_not_blocked_by_the_operator(
    cluster, running_operator, make_cr
):
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(
            lambda: (live(cluster, CR_RESOURCE, "minilm") or {}).get("metadata", {}).get("finalizers")
        )
        await cluster.delete(f"{CR_PATH}/minilm")
        await eventually(lambda: live(cluster, CR_RESOURCE, "minilm") is None)
    # The children go with the garbage collector, through their ownerReferences (not emulated here).


async def test_an_invalid_spec_gets_a_condition_an_event_and_no_children(cluster, running_operator, make_cr):
    spec = {"model": {"id": "org/model"}, "replicas": {"min": 5, "max": 2}}
    async with running_operator():
        await create(cluster, make_cr("broken", spec))
        degraded = await eventually(
            lambda: condition(cluster, "broken", "Degraded").get("status") == "True" or None
        )
        requests_after_rejection = len(operator_requests(cluster))
        await asyncio.sleep(900)  # no hot retry loop: nothing more happens while the spec stays invalid
        assert degraded
        assert (
            len([r for r in operator_requests(cluster)[requests_after_rejection:] if r.method.value != "GET"])
            == 0
        )
    rejected = condition(cluster, "broken", "Degraded")
    assert rejected["reason"] == "InvalidSpec"
    assert "replicas.min must be less than or equal to replicas.max" in rejected["message"]
    assert children_of(cluster, "broken") == {}
    events = [obj.raw for (resource, _, _), obj in cluster.objects.items() if resource.plural == "events"]
    assert any(event["reason"] == "InvalidSpec" and event["type"] == "Warning" for event in events)


async def test_fixing_an_invalid_spec_creates_the_children(cluster, running_operator, make_cr):
    async with running_operator():
        await create(
            cluster, make_cr("broken", {"model": {"id": "org/model"}, "replicas": {"min": 5, "max": 2}})
        )
        await eventually(lambda: condition(cluster, "broken", "Degraded").get("reason") == "InvalidSpec")
        await change_spec(cluster, "broken", {"replicas": {"min": 1, "max": 2}}, generation=2)
        await eventually(lambda: live(cluster, DEPLOYMENTS, "broken"))
        await eventually(lambda: condition(cluster, "broken", "Degraded").get("status") == "False")


async def test_children_the_spec_no_longer_asks_for_are_deleted(cluster, running_operator, make_cr):
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: "PodDisruptionBudget" in children_of(cluster, "minilm"))
        await change_spec(
            cluster,
            "minilm",
            {"replicas": {"min": 1}, "autoscaling": {"enabled": False}, "networkPolicy": {"enabled": False}},
            2,
        )
        await eventually(lambda: set(children_of(cluster, "minilm")) == {"Deployment", "Service"})
        await eventually(lambda: condition(cluster, "minilm", "Autoscaling").get("reason") == "Disabled")
    assert live(cluster, DEPLOYMENTS, "minilm")["spec"]["replicas"] == 1


async def test_monitoring_and_keda_objects_appear_when_their_crds_are_served(
    cluster, running_operator, make_cr, monkeypatch
):
    serve_optional_apis(cluster, prometheus_operator=True, keda=True)
    monkeypatch.setenv("RERANKER_OPERATOR_PROMETHEUS_URL", "http://prometheus.monitoring.svc:9090")
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: cr_status(cluster, "minilm").get("observedGeneration") == 1)
    assert set(children_of(cluster, "minilm")) == {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
    }
    assert cr_status(cluster, "minilm")["metricsSource"] == "keda"
    assert "replicas" not in live(cluster, DEPLOYMENTS, "minilm")["spec"]  # KEDA's HPA owns it


async def test_keda_asked_for_but_not_installed_is_reported(cluster, running_operator, make_cr):
    spec = {**MINILM, "autoscaling": {"metricsSource": "keda"}}
    async with running_operator():
        await create(cluster, make_cr("minilm", spec))
        await eventually(lambda: condition(cluster, "minilm", "Degraded").get("status") == "True")
    assert condition(cluster, "minilm", "Degraded")["reason"] == "KEDAUnavailable"
    assert condition(cluster, "minilm", "Autoscaling")["status"] == "False"
    assert "install KEDA" in condition(cluster, "minilm", "Degraded")["message"]
    assert live(cluster, DEPLOYMENTS, "minilm")["spec"]["replicas"] == 2  # nobody else scales it


async def test_a_foreign_object_with_a_childs_name_is_reported_not_overwritten(
    cluster, running_operator, make_cr
):
    foreign = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "minilm", "namespace": NAMESPACE}}
    await cluster.post(
        f"/api/v1/namespaces/{NAMESPACE}/services", json={**foreign, "spec": {"type": "ClusterIP"}}
    )
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: condition(cluster, "minilm", "Degraded").get("reason") == "ChildConflict")
    assert "Service minilm already exists" in condition(cluster, "minilm", "Degraded")["message"]
    assert "ownerReferences" not in live(cluster, "v1/services", "minilm")["metadata"]


async def test_a_dropped_watch_is_reestablished(cluster, running_operator, make_cr):
    dropped = cluster["watch", cluster.resource(CR_RESOURCE)][:1] << b""
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: live(cluster, DEPLOYMENTS, "minilm"), within=300)
    assert len(dropped) == 1


async def test_peering_replicas_coordinate_through_the_peering_object(cluster, running_operator, make_cr):
    cluster.resources["kopf.dev/v1/clusterkopfpeerings"] = cluster.ResourceInfo(
        kind="ClusterKopfPeering", namespaced=False, verbs={"get", "list", "watch", "patch"}
    )
    cluster.objects["kopf.dev/v1/clusterkopfpeerings", None, "kube-reranker"] = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": "kube-reranker", "resourceVersion": "1"},
    }
    async with running_operator(peering="kube-reranker"):
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: live(cluster, DEPLOYMENTS, "minilm"))
    peering_writes = [
        request
        for request in operator_requests(cluster)
        if request.resource is not None and request.resource.plural == "clusterkopfpeerings"
    ]
    assert any(request.method.value == "PATCH" for request in peering_writes)


def serve_peering(cluster, name: str = "kube-reranker") -> None:
    """The ClusterKopfPeering the chart creates for peered replicas."""
    cluster.resources["kopf.dev/v1/clusterkopfpeerings"] = cluster.ResourceInfo(
        kind="ClusterKopfPeering", namespaced=False, verbs={"get", "list", "watch", "patch"}
    )
    cluster.objects["kopf.dev/v1/clusterkopfpeerings", None, name] = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": name, "resourceVersion": "1"},
    }


def peers(cluster, name: str = "kube-reranker") -> dict[str, dict]:
    """The replicas registered in the peering object, by identity."""
    peering = cluster.objects["kopf.dev/v1/clusterkopfpeerings", None, name]
    return copy.deepcopy(peering.raw.get("status") or {})


def replica_priority(pod_id: str) -> int:
    """The --priority `reranker-operator run` gives a peered replica whose POD_ID is `pod_id`."""
    settings = config.OperatorConfig(peering="kube-reranker", pod_id=pod_id)
    argv = cli.kopf_argv(settings)
    return int(argv[argv.index("--priority") + 1])


async def test_two_peered_replicas_get_distinct_priorities_and_one_of_them_works(
    cluster, running_operator, make_cr
):
    serve_peering(cluster)
    first, second = "kube-reranker-operator-7c9d-abcde", "kube-reranker-operator-7c9d-fghij"
    async with (
        running_operator(peering="kube-reranker", pod_id=first, priority=replica_priority(first)),
        running_operator(peering="kube-reranker", pod_id=second, priority=replica_priority(second)),
    ):
        await eventually(lambda: set(peers(cluster)) == {first, second})
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: live(cluster, DEPLOYMENTS, "minilm"))
        priorities = {identity: peer["priority"] for identity, peer in peers(cluster).items()}
    assert priorities[first] != priorities[second]


async def test_peered_replicas_with_equal_priorities_all_pause(cluster, running_operator, make_cr):
    """Why each replica needs its own priority: kopf's default (0 for all) stops every replica."""
    serve_peering(cluster)
    async with (
        running_operator(peering="kube-reranker", pod_id="operator-a", priority=0),
        running_operator(peering="kube-reranker", pod_id="operator-b", priority=0),
    ):
        await eventually(lambda: set(peers(cluster)) == {"operator-a", "operator-b"})
        await create(cluster, make_cr("minilm", MINILM))
        await asyncio.sleep(120)
        assert live(cluster, DEPLOYMENTS, "minilm") is None


async def test_a_gpu_pod_without_a_gpu_node_is_reported_with_what_to_do(cluster, running_operator, make_cr):
    spec = {"model": {"id": "BAAI/bge-reranker-v2-m3"}, "backend": "gpu", "gpu": {"count": 2}}
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
    }
    async with running_operator():
        await create(cluster, make_cr("bge", spec))
        await eventually(lambda: live(cluster, DEPLOYMENTS, "bge"))
        await start_pod(cluster, "bge", {"phase": "Pending", "conditions": [unschedulable]})
        await eventually(lambda: condition(cluster, "bge", "Degraded").get("reason") == "Unschedulable")
    message = condition(cluster, "bge", "Degraded")["message"]
    assert "4 Insufficient nvidia.com/gpu" in message
    assert "add GPU nodes, lower gpu.count" in message


async def test_an_image_that_cannot_be_pulled_is_reported(cluster, running_operator, make_cr):
    spec = {**MINILM, "image": "registry.example/reranker:typo"}
    waiting = {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}
    container = {
        "name": "reranker-server",
        "image": "registry.example/reranker:typo",
        "state": {"waiting": waiting},
    }
    async with running_operator():
        await create(cluster, make_cr("minilm", spec))
        await eventually(lambda: live(cluster, DEPLOYMENTS, "minilm"))
        await start_pod(cluster, "minilm", {"phase": "Pending", "containerStatuses": [container]})
        await eventually(lambda: condition(cluster, "minilm", "Degraded").get("reason") == "ImagePullFailed")
    assert "registry.example/reranker:typo" in condition(cluster, "minilm", "Degraded")["message"]
