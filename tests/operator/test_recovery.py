"""Transient API errors during a reconcile are retried with backoff until the cluster converges.

These run in real time, without looptime: kopf schedules retries by wall-clock timestamps,
which compacted loop time would skip over. The backoff starts at one second, so they stay short.
"""

from __future__ import annotations

import pytest

from tests.operator.conftest import DEPLOYMENTS, children_of, cr_status, eventually
from tests.operator.test_loop import MINILM, create

pytestmark = pytest.mark.timeout(90)


async def test_conflicts_throttling_and_server_errors_are_retried_until_converged(
    cluster, running_operator, make_cr
):
    failures = (
        cluster["get", cluster.resource(DEPLOYMENTS), cluster.name("minilm")][:1] << 500 << {"code": 500}
    )
    conflicts = (
        cluster["post", cluster.resource("v1/services")][:1] << 409 << {"reason": "Conflict", "code": 409}
    )
    throttled = cluster["post", cluster.resource("autoscaling/v2/horizontalpodautoscalers")][:1] << 429
    async with running_operator():
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: cr_status(cluster, "minilm").get("observedGeneration") == 1, within=60)
    assert (len(failures), len(conflicts), len(throttled)) == (1, 1, 1)
    assert set(children_of(cluster, "minilm")) == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
