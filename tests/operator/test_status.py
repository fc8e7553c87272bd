"""status.py as a pure function: conditions from the spec, the plan and the observed Deployment."""

from __future__ import annotations

import pytest
from reranker_operator import api, status
from reranker_operator.config import OperatorConfig
from reranker_operator.plan import Capabilities, Plan, Problem, plan_children
from reranker_operator.resources.common import ChildRef

SPEC = api.parse_spec({"model": {"id": "m"}, "replicas": {"min": 2, "max": 4}})
PLAN = plan_children(SPEC, ChildRef("rr", "ns"), OperatorConfig(), Capabilities())
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def deployment(*, replicas=2, ready=0, updated=2, available=0, desired=2, observed=True, conditions=()):
    return {
        "metadata": {"generation": 3},
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": 3 if observed else 2,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": list(conditions),
        },
    }


def reconciled(dep, previous=None, now=T0, problems=(), plan=PLAN, pods=()):
    update = status.reconciled(
        spec=SPEC,
        name="rr",
        namespace="ns",
        generation=7,
        plan=plan,
        problems=problems,
        deployment=dep,
        pods=list(pods),
    )
    return update.applied_to(previous or {}, now)


def refreshed(dep, previous, now=T1, pods=()):
    update = status.refreshed(deployment=dep, pods=list(pods), generation=previous.get("observedGeneration"))
    return update.applied_to(previous, now)


def rejected(problem, previous, now=T0, generation=8):
    return status.rejected(problem=problem, generation=generation, spec_rejected=True).applied_to(
        previous, now
    )


def pod(name="rr-5d8f-x2", *, conditions=(), waiting=None, image="kube-reranker/reranker-server:0.1.0"):
    containers = [
        {"name": "reranker-server", "image": image, "state": {"waiting": waiting} if waiting else {}}
    ]
    return {
        "metadata": {"name": name},
        "status": {"conditions": list(conditions), "containerStatuses": containers},
    }


UNSCHEDULABLE_GPU = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
}


def conditions(result) -> dict[str, dict]:
    return {item["type"]: item for item in result["conditions"]}


def test_before_the_deployment_exists_nothing_is_ready_and_creation_is_in_progress():
    result = conditions(reconciled(None))
    assert (result["Ready"]["status"], result["Ready"]["reason"]) == ("False", "DeploymentMissing")
    assert (result["Progressing"]["status"], result["Progressing"]["reason"]) == ("True", "Creating")


def test_one_warm_replica_makes_it_ready_but_not_yet_warmed_up():
    result = conditions(reconciled(deployment(ready=1, available=1)))
    assert result["Ready"]["status"] == "True"
    assert (result["WarmedUp"]["status"], result["WarmedUp"]["reason"]) == ("False", "WarmingUp")
    assert result["WarmedUp"]["message"] == "1 of 2 replicas still load or warm up"
    assert result["Progressing"]["reason"] == "RollingOut"


def test_all_replicas_ready_and_updated_is_a_finished_rollout():
    result = conditions(reconciled(deployment(ready=2, available=2)))
    assert result["WarmedUp"]["status"] == "True"
    assert (result["Progressing"]["status"], result["Progressing"]["reason"]) == ("False", "RolloutComplete")
    assert (result["Degraded"]["status"], result["Degraded"]["reason"]) == ("False", "AsExpected")


def test_an_unobserved_deployment_generation_is_still_progressing():
    result = conditions(reconciled(deployment(ready=2, available=2, observed=False)))
    assert result["Progressing"]["status"] == "True"


def test_a_rollout_past_its_deadline_is_degraded_with_the_deployments_message():
    stuck = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": "timed out",
    }
    result = conditions(reconciled(deployment(conditions=[stuck])))
    assert (result["Degraded"]["status"], result["Degraded"]["reason"]) == (
        "True",
        "ProgressDeadlineExceeded",
    )
    assert result["Degraded"]["message"] == "timed out"
    assert result["Progressing"]["status"] == "False"


def test_plan_problems_make_it_degraded_and_explain_the_autoscaler():
    plan = Plan(
        children=(),
        metrics_source=None,
        preparation=PLAN.preparation,
        problems=(Problem("KEDAUnavailable", "install KEDA"),),
    )
    spec = api.parse_spec({"model": {"id": "m"}, "autoscaling": {"metricsSource": "keda"}})
    result = status.reconciled(
        spec=spec, name="rr", namespace="ns", generation=1, plan=plan, problems=(), deployment=None, pods=[]
    ).applied_to({}, T0)
    found = conditions(result)
    assert (found["Degraded"]["reason"], found["Degraded"]["message"]) == ("KEDAUnavailable", "install KEDA")
    assert (found["Autoscaling"]["status"], found["Autoscaling"]["reason"]) == ("False", "KEDAUnavailable")
    assert result["metricsSource"] is None


def test_the_status_carries_generation_replicas_endpoint_and_metrics_source():
    result = reconciled(deployment(replicas=3, ready=2))
    assert result["observedGeneration"] == 7
    assert (result["replicas"], result["readyReplicas"]) == (3, 2)
    assert result["endpoint"] == "http://rr.ns.svc:8080"
    assert result["metricsSource"] == "prometheus-adapter"
    assert all(item["observedGeneration"] == 7 for item in result["conditions"])


def test_transition_times_move_only_when_a_condition_flips():
    first = reconciled(deployment(ready=0), now=T0)
    same = reconciled(deployment(ready=0), previous=first, now=T1)
    flipped = reconciled(deployment(ready=1, available=1), previous=first, now=T1)
    assert same == first
    assert status.status_patch(first, same) == {}
    assert conditions(flipped)["Ready"]["lastTransitionTime"] == T1
    assert conditions(flipped)["Degraded"]["lastTransitionTime"] == T0


def test_an_invalid_spec_keeps_what_was_there_and_says_what_to_fix():
    before = reconciled(deployment(ready=2, available=2))
    problem = Problem(status.INVALID_SPEC, "spec.replicas: raise replicas.max")
    after = rejected(problem, before, now=T1)
    assert after["observedGeneration"] == 8
    assert after["readyReplicas"] == 2
    degraded = conditions(after)["Degraded"]
    assert (degraded["status"], degraded["reason"], degraded["message"]) == (
        "True",
        "InvalidSpec",
        "spec.replicas: raise replicas.max",
    )


def test_deployment_events_refresh_readiness_but_keep_what_only_a_reconcile_knows():
    invalid = rejected(Problem(status.INVALID_SPEC, "fix it"), reconciled(None))
    after = refreshed(deployment(ready=2, available=2), invalid, pods=[pod(conditions=[UNSCHEDULABLE_GPU])])
    found = conditions(after)
    assert found["Ready"]["status"] == "True"
    assert found["Degraded"]["reason"] == "InvalidSpec"
    assert found["Autoscaling"] == conditions(invalid)["Autoscaling"]
    assert after["observedGeneration"] == 8
    assert after["readyReplicas"] == 2


def test_deployment_events_clear_a_rollout_failure_once_it_recovers():
    stuck = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "x"}
    failing = refreshed(deployment(conditions=[stuck]), {}, now=T0)
    recovered = refreshed(deployment(ready=2, available=2), failing)
    assert conditions(failing)["Degraded"]["status"] == "True"
    assert conditions(recovered)["Degraded"]["status"] == "False"


def test_a_status_patch_holds_only_what_changed():
    assert status.status_patch({"a": 1, "b": [1]}, {"a": 1, "b": [2], "c": None}) == {"b": [2]}
    assert status.status_patch({"metricsSource": "keda"}, {"metricsSource": None}) == {"metricsSource": None}


def test_conditions_from_other_writers_survive_in_a_stable_order():
    slo = {
        "type": "SLOMet",
        "status": "True",
        "reason": "UnderTarget",
        "message": "",
        "lastTransitionTime": T0,
    }
    result = reconciled(deployment(), previous={"conditions": [slo]})
    assert [item["type"] for item in result["conditions"]] == [
        "Ready",
        "Progressing",
        "WarmedUp",
        "ModelReady",
        "Degraded",
        "Autoscaling",
        "SLOMet",
    ]
    assert conditions(result)["SLOMet"] == slo


def test_a_pod_without_a_gpu_node_says_so_and_how_to_fix_it():
    degraded = conditions(reconciled(deployment(), pods=[pod(conditions=[UNSCHEDULABLE_GPU])]))["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "Unschedulable")
    assert "3 Insufficient nvidia.com/gpu" in degraded["message"]
    assert "add GPU nodes, lower gpu.count" in degraded["message"]


def test_a_missing_image_names_the_image_and_the_fields_to_check():
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "registry/typo:1"'}
    degraded = conditions(reconciled(deployment(), pods=[pod(waiting=waiting, image="registry/typo:1")]))[
        "Degraded"
    ]
    assert degraded["reason"] == "ImagePullFailed"
    assert "registry/typo:1" in degraded["message"]
    assert "spec.image and podTemplate.imagePullSecrets" in degraded["message"]


def test_a_crash_loop_points_at_the_logs():
    waiting = {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}
    degraded = conditions(reconciled(deployment(), pods=[pod(waiting=waiting)]))["Degraded"]
    assert (degraded["reason"], degraded["message"].endswith("read its logs")) == ("CrashLoopBackOff", True)


def test_one_problem_per_kind_however_many_pods_share_it():
    pods = [pod(f"rr-{i}", conditions=[UNSCHEDULABLE_GPU]) for i in range(5)]
    assert len(status.pod_problems(pods)) == 1


def test_healthy_or_starting_pods_are_no_problem():
    starting = pod(waiting={"reason": "ContainerCreating"})
    assert status.pod_problems([starting, pod()]) == []


def test_a_failed_rollout_outranks_what_the_pods_tell():
    stuck = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": "late",
    }
    result = conditions(
        reconciled(deployment(conditions=[stuck]), pods=[pod(conditions=[UNSCHEDULABLE_GPU])])
    )
    assert result["Degraded"]["reason"] == "ProgressDeadlineExceeded"


def test_pod_events_update_degraded_and_clear_it_when_the_pods_recover():
    failing = refreshed(deployment(), {}, now=T0, pods=[pod(conditions=[UNSCHEDULABLE_GPU])])
    recovered = refreshed(deployment(ready=2, available=2), failing, pods=[pod()])
    assert conditions(failing)["Degraded"]["reason"] == "Unschedulable"
    assert conditions(recovered)["Degraded"]["status"] == "False"


def test_a_rejected_child_keeps_the_observed_generation_of_the_last_success():
    before = reconciled(deployment(ready=2, available=2))
    problem = Problem(status.CHILD_CONFLICT, "Service rr already exists")
    after = status.rejected(problem=problem, generation=9, spec_rejected=False).applied_to(before, T1)
    assert after["observedGeneration"] == 7
    assert conditions(after)["Degraded"]["reason"] == "ChildConflict"


def test_conditions_are_set_by_type_on_the_freshest_body():
    slo = {
        "type": "SLOMet",
        "status": "False",
        "reason": "AboveTarget",
        "message": "",
        "lastTransitionTime": T0,
    }
    body = {"status": {"conditions": [slo], "p95Milliseconds": 640}}
    update = status.reconciled(
        spec=SPEC, name="rr", namespace="ns", generation=7, plan=PLAN, problems=(), deployment=None, pods=[]
    )
    status.set_conditions(body, update=update, now=T1)
    assert [item["type"] for item in body["status"]["conditions"]] == [*status.CONDITION_ORDER[:6], "SLOMet"]
    assert body["status"]["p95Milliseconds"] == 640
    unchanged = body["status"]["conditions"]
    status.set_conditions(body, update=update, now="2027-01-01T00:00:00Z")
    assert body["status"]["conditions"] is unchanged


@pytest.mark.parametrize(
    ("message", "reason", "said"),
    [
        (
            "IntegrityCheckFailed: integrity check failed: largest logit error 2.1 (allowed 1e-3)",
            "IntegrityCheckFailed",
            ["pod rr-5d8f-x2 refused its model: integrity check failed"],
        ),
        (
            "ApiKeysUnusable: --api-keys-file / RERANKER_API_KEYS_FILE: the API key file "
            "/etc/kube-reranker/api-keys/api-keys holds no API key",
            "ApiKeysUnusable",
            ["pod rr-5d8f-x2 refused to serve without API keys", "holds no API key"],
        ),
        (
            "GPUUnavailable: backend gpu: ONNX Runtime's CUDAExecutionProvider cannot load "
            "(libcuda.so.1: cannot open shared object file: No such file or directory)",
            "GPUUnavailable",
            ["pod rr-5d8f-x2 cannot use a GPU: backend gpu", "libcuda.so.1"],
        ),
    ],
    ids=["refused-artefact", "unusable-api-keys", "no-cuda-provider"],
)
def test_a_pod_that_refused_to_start_says_why_in_degraded(message: str, reason: str, said: list[str]) -> None:
    refused = pod()
    refused["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"exitCode": 1, "reason": "Error", "message": message}
    }
    degraded = conditions(reconciled(deployment(), pods=[refused]))["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", reason)
    for words in said:
        assert words in degraded["message"]
