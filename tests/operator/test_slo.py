"""slo.py as a pure function, and the Prometheus answers the operator understands."""

from __future__ import annotations

import pytest
from reranker_operator import api, slo, status
from reranker_operator.prometheus import PrometheusError, Sample, SLOReading, parse_response

T0 = "2026-01-01T00:00:00Z"


def spec(**fields) -> api.RerankerDeploymentSpec:
    return api.parse_spec(
        {"model": {"id": "m"}, "maxCandidates": 100, "latencySLO": {"p95Milliseconds": 300}, **fields}
    )


def applied(update: status.StatusUpdate, previous: dict | None = None) -> dict:
    return update.applied_to(previous or {}, T0)


def conditions(result: dict) -> dict[str, dict]:
    return {item["type"]: item for item in result["conditions"]}


@pytest.mark.parametrize(
    ("p95_seconds", "state", "reason", "p95_ms"),
    [
        (0.12, "True", "WithinSLO", 120),
        (0.3, "True", "WithinSLO", 300),
        (0.301, "False", "AboveSLO", 301),
        (0.0, "True", "Idle", None),
        (None, "Unknown", "NoMetrics", None),
    ],
)
def test_slo_met_compares_the_p95_with_the_slo(p95_seconds, state, reason, p95_ms):
    result = applied(slo.measured(spec(), SLOReading(p95_seconds, 0.05), generation=2))
    met = conditions(result)["SLOMet"]
    assert (met["status"], met["reason"], met["observedGeneration"]) == (state, reason, 2)
    assert result.get("p95Milliseconds") == p95_ms


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {},
            "SLO 300 ms, measured 850 ms at k=100 on cpu: lower maxCandidates or maxLength, use int8 or gpu",
        ),
        (
            {"model": {"id": "m", "quantization": "int8"}},
            "SLO 300 ms, measured 850 ms at k=100 on cpu: lower maxCandidates or maxLength, or use gpu",
        ),
        (
            {"backend": "gpu"},
            "SLO 300 ms, measured 850 ms at k=100 on gpu: lower maxCandidates or maxLength, or raise the SLO",
        ),
    ],
)
def test_an_slo_slower_than_one_k_cap_request_is_infeasible_with_the_remedies_left(fields, message):
    result = applied(slo.measured(spec(**fields), SLOReading(0.9, 0.85), generation=1))
    feasible = conditions(result)["SLOFeasible"]
    assert (feasible["status"], feasible["reason"], feasible["message"]) == (
        "False",
        "KCapSlowerThanSLO",
        message,
    )
    assert result["kCapLatencyMilliseconds"] == 850


def test_a_k_cap_request_within_the_slo_is_feasible():
    feasible = conditions(applied(slo.measured(spec(), SLOReading(0.1, 0.12), generation=1)))["SLOFeasible"]
    assert (feasible["status"], feasible["message"]) == (
        "True",
        "SLO 300 ms, measured 120 ms at k=100 on cpu during warm-up",
    )


def test_no_warm_up_measurement_leaves_feasibility_unknown():
    feasible = conditions(applied(slo.measured(spec(), SLOReading(0.1, None), generation=1)))["SLOFeasible"]
    assert (feasible["status"], feasible["reason"]) == ("Unknown", "NotMeasured")


def test_an_unanswered_query_makes_both_unknown_and_drops_the_old_numbers():
    previous = applied(slo.measured(spec(), SLOReading(0.1, 0.12), generation=1))
    result = applied(slo.unmeasured("cannot reach http://p:9090", generation=1), previous)
    assert {c["type"]: c["status"] for c in result["conditions"]} == {
        "SLOMet": "Unknown",
        "SLOFeasible": "Unknown",
    }
    assert status.status_patch(previous, result)["p95Milliseconds"] is None
    assert "cannot reach http://p:9090" in conditions(result)["SLOMet"]["message"]


def test_slo_conditions_leave_the_reconciles_conditions_alone():
    previous = {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Serving", "message": "", "lastTransitionTime": T0}
        ]
    }
    result = applied(slo.measured(spec(), SLOReading(0.1, 0.12), generation=1), previous)
    assert [item["type"] for item in result["conditions"]] == ["Ready", "SLOMet", "SLOFeasible"]


def test_a_vector_answer_gives_its_samples():
    sample = '{"metric":{"pod":"a"},"value":[1,"0.25"]}'
    body = f'{{"status":"success","data":{{"resultType":"vector","result":[{sample}]}}}}'
    assert parse_response(200, body, "http://p") == [Sample(labels={"pod": "a"}, value=0.25)]


def test_a_scalar_answer_is_one_unlabelled_sample():
    body = '{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}'
    assert parse_response(200, body, "http://p") == [Sample(labels={}, value=3.0)]


@pytest.mark.parametrize(
    ("code", "body", "says"),
    [
        (
            400,
            '{"status":"error","errorType":"bad_data","error":"parse error at char 3"}',
            "parse error at char 3",
        ),
        (502, "<html>Bad Gateway</html>", "not JSON"),
        (
            200,
            '{"status":"success","data":{"resultType":"matrix","result":[]}}',
            "neither a scalar nor a vector",
        ),
    ],
)
def test_a_broken_answer_raises_an_error_that_says_what_went_wrong(code, body, says):
    with pytest.raises(PrometheusError, match=says):
        parse_response(code, body, "http://p")
