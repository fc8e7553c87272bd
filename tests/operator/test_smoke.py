"""Black box: the operator started through kopf's CLI with the arguments `reranker-operator run` uses."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from kopf.testing import KopfRunner
from reranker_operator import cli, config

from tests.conftest import free_port
from tests.operator.conftest import DEPLOYMENTS, eventually, live
from tests.operator.test_loop import MINILM, create, peers, serve_peering

pytestmark = pytest.mark.timeout(90)


async def get_text(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_the_cli_runs_the_operator_which_reconciles_and_reports_health(cluster, make_cr, monkeypatch):
    metrics_port, liveness_port = free_port(), free_port()
    monkeypatch.setenv("RERANKER_OPERATOR_METRICS_PORT", str(metrics_port))
    monkeypatch.setenv("RERANKER_OPERATOR_LOG_FORMAT", "json")
    argv = cli.kopf_argv(config.load(), liveness=f"http://127.0.0.1:{liveness_port}/healthz")
    runner = KopfRunner(argv, timeout=60)
    runner.__enter__()
    try:
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: live(cluster, DEPLOYMENTS, "minilm"), within=30)
        health = await get_text(f"http://127.0.0.1:{liveness_port}/healthz")
        for _ in range(100):  # the reconcile that created the Deployment may still be writing status
            scraped = await get_text(f"http://127.0.0.1:{metrics_port}/metrics")
            if 'result="success"' in scraped[1]:
                break
            await asyncio.sleep(0.1)
    finally:
        # Stopping joins kopf's thread; keep this loop free meanwhile so kmock can still answer.
        await asyncio.to_thread(runner.__exit__, None, None, None)
    assert runner.exit_code == 0
    assert runner.exception is None
    assert health[0] == 200
    assert scraped[0] == 200
    assert 'reranker_operator_child_changes_total{action="created",kind="Deployment"} 1' in scraped[1]
    assert 'reranker_operator_reconciliations_total{result="success"}' in scraped[1]


async def test_a_peered_replica_registers_with_the_priority_of_its_pod_name(cluster, make_cr, monkeypatch):
    serve_peering(cluster)
    monkeypatch.setenv("RERANKER_OPERATOR_PEERING", "kube-reranker")
    monkeypatch.setenv("POD_ID", "kube-reranker-operator-6f7d9c-x2x9z")
    liveness_port = free_port()
    argv = cli.kopf_argv(config.load(), liveness=f"http://127.0.0.1:{liveness_port}/healthz")
    runner = KopfRunner(argv, timeout=60)
    runner.__enter__()
    try:
        registered = await eventually(
            lambda: peers(cluster).get("kube-reranker-operator-6f7d9c-x2x9z"), within=30
        )
        await create(cluster, make_cr("minilm", MINILM))
        await eventually(lambda: live(cluster, DEPLOYMENTS, "minilm"), within=30)
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
    assert runner.exit_code == 0
    assert registered["priority"] == cli.peering_priority("kube-reranker-operator-6f7d9c-x2x9z")
