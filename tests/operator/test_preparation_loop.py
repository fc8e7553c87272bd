"""The real kopf operator against kmock: prepare first, then roll; one Job per recipe and claim.

The tests play the Job controller and the kubelet: they add the Job's pod with its termination
message (what `reranker-server prepare` writes) and mark the Job succeeded or failed.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from reranker_operator import naming

from tests.operator.conftest import (
    DEPLOYMENTS,
    NAMESPACE,
    condition,
    container_env,
    cr_status,
    eventually,
    live,
)
from tests.operator.test_loop import change_spec, create

pytestmark = [pytest.mark.looptime, pytest.mark.timeout(120)]

JOBS = "batch/v1/jobs"
BGE = {
    "model": {"id": "BAAI/bge-reranker-v2-m3", "revision": "v1", "cache": {"claimName": "models"}},
    "replicas": {"min": 1, "max": 2},
}
RESULT = (
    '{"artefact": "/cache/artefacts/x", "digest": "sha256:ab12", "preparationSeconds": 312.4, '
    '"resolvedCommit": "953dc6f6f85a1b2dbfca4c34a2796e7dde08d41e", "reused": false, "sizeBytes": 2271071852}'
)


def jobs(cluster) -> list[dict[str, Any]]:
    return [
        copy.deepcopy(obj.raw)
        for (resource, namespace, _), obj in cluster.objects.items()
        if resource.plural == "jobs" and namespace == NAMESPACE and not obj.deleted
    ]


async def finish_job(cluster, name: str, *, exit_code: int, message: str, reason: str = "") -> None:
    """What the Job controller and the kubelet report when the preparation pod has terminated."""
    terminated = {
        "exitCode": exit_code,
        "message": message,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-x7k2p", "namespace": NAMESPACE, "labels": {"job-name": name}},
        "status": {
            "containerStatuses": [
                {"name": naming.PREPARE_CONTAINER_NAME, "state": {"terminated": terminated}}
            ]
        },
    }
    await cluster.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=pod)
    if exit_code == 0:
        status = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    else:
        status = {
            "failed": 1,
            "conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}],
        }
    await cluster.patch(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}/status", json={"status": status})


async def create_and_finish(
    cluster, cr: dict[str, Any], *, exit_code: int, message: str, reason: str = ""
) -> dict:
    """Apply a CR, wait for its preparation Job, and let that Job end as told."""
    await create(cluster, cr)
    (job,) = await eventually(lambda: jobs(cluster))
    await finish_job(cluster, job["metadata"]["name"], exit_code=exit_code, message=message, reason=reason)
    return job


async def model_failure(cluster, name: str) -> dict[str, Any]:
    return await eventually(
        lambda: (
            condition(cluster, name, "ModelReady").get("reason") == "PreparationFailed"
            and condition(cluster, name, "ModelReady")
        )
    )


def prepare_args(job: dict[str, Any]) -> dict[str, str]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item.get("value") for item in container["env"]} | {"out": container["args"][2]}


async def test_a_shared_cache_gets_a_preparation_job_before_any_deployment(
    cluster, running_operator, make_cr
):
    async with running_operator():
        await create(cluster, make_cr("bge", BGE))
        (job,) = await eventually(lambda: jobs(cluster))
        await eventually(lambda: condition(cluster, "bge", "ModelReady").get("reason") == "Preparing")
    recipe = prepare_args(job)
    assert (recipe["RERANKER_MODEL"], recipe["RERANKER_REVISION"], recipe["RERANKER_QUANTIZE"]) == (
        "BAAI/bge-reranker-v2-m3",
        "v1",
        "none",
    )
    assert job["spec"]["template"]["spec"]["volumes"][0] == {
        "name": "cache",
        "persistentVolumeClaim": {"claimName": "models"},
    }
    assert live(cluster, DEPLOYMENTS, "bge") is None
    assert condition(cluster, "bge", "ModelReady")["status"] == "False"


async def test_a_succeeded_job_brings_the_deployment_with_the_artefact_and_the_model_status(
    cluster, running_operator, make_cr
):
    async with running_operator():
        job = await create_and_finish(cluster, make_cr("bge", BGE), exit_code=0, message=RESULT)
        deployment = await eventually(lambda: live(cluster, DEPLOYMENTS, "bge"))
        await eventually(lambda: condition(cluster, "bge", "ModelReady").get("status") == "True")
    pod = deployment["spec"]["template"]["spec"]
    assert container_env(deployment)["RERANKER_ARTEFACT"] == prepare_args(job)["out"]
    assert {"name": "cache", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in pod[
        "volumes"
    ]
    assert cr_status(cluster, "bge")["model"] == {
        "artefact": "/cache/artefacts/x",
        "digest": "sha256:ab12",
        "resolvedCommit": "953dc6f6f85a1b2dbfca4c34a2796e7dde08d41e",
        "sizeBytes": 2271071852,
        "preparationSeconds": 312,
    }


async def test_a_failed_job_says_why_and_creates_no_deployment(cluster, running_operator, make_cr):
    message = "RepositoryNotFound: model 'BAAI/bge-reranker-v2-m3' was not found on the Hugging Face hub"
    async with running_operator():
        await create(cluster, make_cr("bge", BGE))
        (job,) = await eventually(lambda: jobs(cluster))
        await finish_job(cluster, job["metadata"]["name"], exit_code=1, message=message)
        failed = await eventually(
            lambda: (
                condition(cluster, "bge", "ModelReady").get("reason") == "PreparationFailed"
                and condition(cluster, "bge", "ModelReady")
            )
        )
    assert failed["message"].startswith("RepositoryNotFound: model 'BAAI/bge-reranker-v2-m3' was not found")
    assert "set HF_TOKEN" in failed["message"]
    assert condition(cluster, "bge", "Degraded")["reason"] == "PreparationFailed"
    assert live(cluster, DEPLOYMENTS, "bge") is None


async def test_an_oom_killed_preparation_says_to_raise_its_memory(cluster, running_operator, make_cr):
    async with running_operator():
        await create(cluster, make_cr("bge", BGE))
        (job,) = await eventually(lambda: jobs(cluster))
        await finish_job(cluster, job["metadata"]["name"], exit_code=137, message="", reason="OOMKilled")
        failed = await eventually(
            lambda: (
                condition(cluster, "bge", "ModelReady").get("reason") == "PreparationFailed"
                and condition(cluster, "bge", "ModelReady")
            )
        )
    assert "OutOfMemory" in failed["message"]
    assert "prepare.resources.limits.memory" in failed["message"]


async def test_a_new_revision_is_prepared_while_the_running_deployment_stays_untouched(
    cluster, running_operator, make_cr
):
    async with running_operator():
        first = await create_and_finish(cluster, make_cr("bge", BGE), exit_code=0, message=RESULT)
        before = await eventually(lambda: live(cluster, DEPLOYMENTS, "bge"))
        await change_spec(cluster, "bge", {**BGE, "model": {**BGE["model"], "revision": "v2"}}, generation=2)
        second = await eventually(
            lambda: [j for j in jobs(cluster) if j["metadata"]["name"] != first["metadata"]["name"]]
        )
        await eventually(lambda: cr_status(cluster, "bge").get("observedGeneration") == 2)
        during = live(cluster, DEPLOYMENTS, "bge")
        await finish_job(cluster, second[0]["metadata"]["name"], exit_code=0, message=RESULT)
        after = await eventually(
            lambda: (
                container_env(live(cluster, DEPLOYMENTS, "bge"))["RERANKER_REVISION"] == "v2"
                and live(cluster, DEPLOYMENTS, "bge")
            )
        )
    assert prepare_args(second[0])["RERANKER_REVISION"] == "v2"
    assert during["spec"]["template"] == before["spec"]["template"]
    assert container_env(after)["RERANKER_ARTEFACT"] == prepare_args(second[0])["out"]


async def test_two_rerankerdeployments_with_one_recipe_share_one_job(cluster, running_operator, make_cr):
    first, second = make_cr("bge-a", BGE), make_cr("bge-b", BGE)
    async with running_operator():
        await create(cluster, first)
        await eventually(lambda: jobs(cluster))
        await create(cluster, second)
        (job,) = await eventually(
            lambda: (
                len(jobs(cluster)) == 1
                and len(jobs(cluster)[0]["metadata"].get("ownerReferences") or ()) == 2
                and jobs(cluster)
            )
        )
    owners = {ref["uid"] for ref in job["metadata"]["ownerReferences"]}
    assert owners == {first["metadata"]["uid"], second["metadata"]["uid"]}
    assert not any(ref.get("controller") for ref in job["metadata"]["ownerReferences"])


async def test_without_a_shared_cache_the_pods_prepare_in_an_init_container(
    cluster, running_operator, make_cr
):
    spec = {"model": {"id": "cross-encoder/ms-marco-MiniLM-L-6-v2"}, "replicas": {"min": 1, "max": 2}}
    async with running_operator():
        await create(cluster, make_cr("minilm", spec))
        deployment = await eventually(lambda: live(cluster, DEPLOYMENTS, "minilm"))
        model = await eventually(lambda: condition(cluster, "minilm", "ModelReady"))
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert init["args"][:3] == ["prepare", "--out", container_env(deployment)["RERANKER_ARTEFACT"]]
    assert not jobs(cluster)
    assert model["reason"] == "PreparingInEachPod"
    assert "model.cache.claimName" in model["message"]


async def test_a_new_preparation_keeps_the_artefacts_other_jobs_of_its_claim_made(
    cluster, running_operator, make_cr
):
    other = {**BGE, "model": {**BGE["model"], "quantization": "none", "revision": "v0"}}
    async with running_operator():
        await create(cluster, make_cr("bge-old", other))
        (first,) = await eventually(lambda: jobs(cluster))
        await create(cluster, make_cr("bge", BGE))
        (second,) = await eventually(
            lambda: [j for j in jobs(cluster) if j["metadata"]["name"] != first["metadata"]["name"]]
        )
    (container,) = second["spec"]["template"]["spec"]["containers"]
    kept = first["metadata"]["annotations"][f"{naming.GROUP}/artefact"]
    assert container["args"][-2:] == ["--keep", kept]
    assert "--collect-after-hours" in container["args"]
