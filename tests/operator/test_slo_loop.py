"""The real kopf operator against kmock, reading the SLO state from a Prometheus HTTP API.

The Prometheus is a small local server speaking /api/v1/query (fake_prometheus.py): the test
decides which P95 and which warm-up k-cap latency it reports and watches the RerankerDeployment's
status follow. The queries it receives must be the exact strings the autoscaler and the alerts use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from reranker_operator import api
from reranker_operator.resources import promql
from reranker_operator.resources.common import ChildRef
from reranker_operator.resources.prometheusrule import build_prometheusrule
from reranker_operator.resources.scaledobject import build_scaledobject

from tests.operator.conftest import NAMESPACE, condition, cr_status, eventually
from tests.operator.fake_prometheus import FakePrometheus, serve_fake_prometheus
from tests.operator.test_loop import create

pytestmark = [pytest.mark.looptime, pytest.mark.timeout(120)]

SPEC = {
    "model": {"id": "cross-encoder/ms-marco-MiniLM-L-6-v2"},
    "maxCandidates": 100,
    "latencySLO": {"p95Milliseconds": 300},
    "replicas": {"min": 1, "max": 6},
}
P95 = promql.p95_seconds(NAMESPACE, "minilm")
KCAP = promql.warmup_kcap_latency_seconds(NAMESPACE, "minilm")


@pytest.fixture
async def prometheus(cluster, monkeypatch) -> AsyncIterator[FakePrometheus]:
    """A Prometheus the operator is configured with (RERANKER_OPERATOR_PROMETHEUS_URL)."""
    async with serve_fake_prometheus() as fake:
        monkeypatch.setenv("RERANKER_OPERATOR_PROMETHEUS_URL", fake.url)
        yield fake


async def condition_becomes(cluster, kind: str, status: str) -> dict[str, Any]:
    """The CR's `kind` condition once its status is `status`: the SLO timer's next ticks set it."""
    await eventually(lambda: condition(cluster, "minilm", kind).get("status") == status, within=300)
    return condition(cluster, "minilm", kind)


async def test_slo_met_follows_the_p95_that_prometheus_reports(
    cluster, running_operator, make_cr, prometheus
):
    prometheus.answers |= {P95: 0.12, KCAP: 0.08}
    async with running_operator():
        await create(cluster, make_cr("minilm", SPEC))
        under = await condition_becomes(cluster, "SLOMet", "True")
        assert cr_status(cluster, "minilm")["p95Milliseconds"] == 120

        prometheus.answers[P95] = 0.45
        over = await condition_becomes(cluster, "SLOMet", "False")
        assert cr_status(cluster, "minilm")["p95Milliseconds"] == 450

        prometheus.answers[P95] = 0.2
        await condition_becomes(cluster, "SLOMet", "True")
    assert (under["reason"], under["message"]) == ("WithinSLO", "P95 120 ms over the last 2m, SLO 300 ms")
    assert over["reason"] == "AboveSLO"
    assert over["message"].startswith("P95 450 ms over the last 2m exceeds the 300 ms SLO")
    assert cr_status(cluster, "minilm")["p95Milliseconds"] == 200


async def test_the_operator_asks_for_the_p95_the_autoscaler_and_the_alerts_use(
    cluster, running_operator, make_cr, prometheus
):
    prometheus.answers |= {P95: 0.12, KCAP: 0.08}
    async with running_operator():
        await create(cluster, make_cr("minilm", SPEC))
        await condition_becomes(cluster, "SLOMet", "True")
    ref, spec = ChildRef("minilm", NAMESPACE), api.parse_spec(SPEC)
    (keda_p95, _) = build_scaledobject(spec, ref, prometheus_url=prometheus.url)["spec"]["triggers"]
    (group,) = build_prometheusrule(spec, ref)["spec"]["groups"]
    (alert,) = [rule for rule in group["rules"] if rule["alert"] == "RerankerP95AboveSLO"]
    assert set(prometheus.queries) == {P95, KCAP}
    assert keda_p95["metadata"]["query"] == P95
    assert alert["expr"] == f"{P95} > 0.3"


async def test_an_slo_that_one_k_cap_request_already_misses_says_what_to_change(
    cluster, running_operator, make_cr, prometheus
):
    prometheus.answers |= {P95: 0.9, KCAP: 0.85}
    async with running_operator():
        await create(cluster, make_cr("minilm", SPEC))
        infeasible = await condition_becomes(cluster, "SLOFeasible", "False")
    assert infeasible["reason"] == "KCapSlowerThanSLO"
    assert infeasible["message"] == (
        "SLO 300 ms, measured 850 ms at k=100 on cpu: lower maxCandidates or maxLength, use int8 or gpu"
    )
    assert cr_status(cluster, "minilm")["kCapLatencyMilliseconds"] == 850


async def test_a_failing_prometheus_makes_the_slo_unknown_and_says_why(
    cluster, running_operator, make_cr, prometheus
):
    prometheus.answers |= {P95: 0.12, KCAP: 0.08}
    async with running_operator():
        await create(cluster, make_cr("minilm", SPEC))
        await condition_becomes(cluster, "SLOMet", "True")
        prometheus.failing = True
        unknown = await condition_becomes(cluster, "SLOMet", "Unknown")
    assert unknown["reason"] == "PrometheusUnavailable"
    assert "503" in unknown["message"]
    assert "TSDB not ready" in unknown["message"]
    assert "p95Milliseconds" not in cr_status(cluster, "minilm")  # an old number is not shown as current


async def test_a_deployment_prometheus_does_not_scrape_is_reported_as_no_metrics(
    cluster, running_operator, make_cr, prometheus
):
    async with running_operator():
        await create(cluster, make_cr("minilm", SPEC))
        no_metrics = await condition_becomes(cluster, "SLOMet", "Unknown")
    assert no_metrics["reason"] == "NoMetrics"
    assert "check that it scrapes the pods" in no_metrics["message"]
    assert condition(cluster, "minilm", "SLOFeasible")["reason"] == "NotMeasured"
