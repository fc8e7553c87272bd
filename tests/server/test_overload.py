"""Overload: a burst far beyond capacity is refused quickly, admitted work meets its deadline, the queue
stays bounded, and the server serves normally once the burst has passed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from reranker_server.api import app_services, create_app
from reranker_server.config import Settings
from reranker_server.engine import Engine

from tests.server.conftest import running_app, wait_for
from tests.server.texts import QUERY, passages

TIMEOUT_MS = 400
K = 100
#: The burst is this many times what the server can finish within one deadline (at least MIN_BURST).
OVERLOAD_FACTOR = 6
MIN_BURST = 40


@pytest.mark.timeout(120)
async def test_a_burst_beyond_capacity_is_refused_fast_and_the_queue_stays_bounded(
    settings_factory: Callable[..., Settings], engine: Engine
) -> None:
    settings = settings_factory(max_candidates=K, request_timeout_ms=TIMEOUT_MS)
    app = create_app(settings, engine=engine)
    async with running_app(app) as client:
        batcher = app_services(app).batcher
        assert batcher is not None
        documents = passages(K, min_words=100, max_words=100)
        request_tokens = batcher.estimate(QUERY, documents)
        seconds_per_token = batcher.throughput.seconds_per_token
        assert seconds_per_token is not None, "warm-up measures the throughput"
        capacity = TIMEOUT_MS / 1000 / (request_tokens * seconds_per_token)
        burst = max(MIN_BURST, round(OVERLOAD_FACTOR * capacity))
        burst_tokens = burst * request_tokens
        peak_queue = 0
        sampling = True

        async def sample_queue() -> None:
            nonlocal peak_queue
            while sampling:
                peak_queue = max(peak_queue, batcher.queued_tokens)
                await asyncio.sleep(0.002)

        async def timed_request() -> tuple[httpx.Response, float]:
            started = time.perf_counter()
            response = await client.post("/v1/rerank", json={"query": QUERY, "documents": documents})
            return response, time.perf_counter() - started

        sampler = asyncio.create_task(sample_queue())
        outcomes = await asyncio.gather(*(timed_request() for _ in range(burst)))
        sampling = False
        await sampler

        statuses = [response.status_code for response, _ in outcomes]
        assert set(statuses) <= {200, 429, 503}
        assert statuses.count(200) >= 1
        assert statuses.count(429) >= burst // 2
        for response, _ in outcomes:
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1
                assert response.json()["error"]["code"] == "overloaded"
            if response.status_code == 503:
                assert response.json()["error"]["code"] == "deadline_exceeded"
        refused = sorted(elapsed for response, elapsed in outcomes if response.status_code == 429)
        assert refused[len(refused) // 2] < TIMEOUT_MS / 1000
        assert peak_queue < burst_tokens / 3

        async def drained() -> bool:
            return batcher.queued_tokens == 0

        await wait_for(drained, 10, "the queue to drain after the burst")
        after = await client.post("/v1/rerank", json={"query": QUERY, "documents": documents[:10]})
        assert after.status_code == 200


@pytest.mark.timeout(120)
async def test_admission_sheds_at_the_slo_and_the_p95_the_autoscaler_reads_counts_the_shed_demand(
    settings_factory: Callable[..., Settings], engine: Engine
) -> None:
    """A long deadline (4 SLOs by default) no longer lets the queue grow past one SLO of work, and
    every refused request is a latency sample at its predicted latency, above the SLO's budget."""
    from prometheus_client.parser import text_string_to_metric_families

    slo_ms = 300
    settings = settings_factory(max_candidates=K, latency_slo_ms=slo_ms, request_timeout_ms=0)
    assert settings.request_timeout_s == pytest.approx(4 * slo_ms / 1000)
    app = create_app(settings, engine=engine)
    async with running_app(app) as client:
        batcher = app_services(app).batcher
        assert batcher is not None
        documents = passages(K, min_words=100, max_words=100)
        seconds_per_token = batcher.throughput.seconds_per_token
        assert seconds_per_token is not None
        burst = max(
            MIN_BURST,
            round(OVERLOAD_FACTOR * slo_ms / 1000 / (batcher.estimate(QUERY, documents) * seconds_per_token)),
        )
        responses = await asyncio.gather(
            *(client.post("/v1/rerank", json={"query": QUERY, "documents": documents}) for _ in range(burst))
        )
        statuses = [response.status_code for response in responses]
        assert statuses.count(429) >= burst // 2
        assert (
            "latency budget" in next(r for r in responses if r.status_code == 429).json()["error"]["message"]
        )
        scraped = (await client.get("/metrics")).text
    samples = [s for family in text_string_to_metric_families(scraped) for s in family.samples]
    counted = sum(s.value for s in samples if s.name == "reranker_request_duration_seconds_count")
    assert counted == burst
    within_budget = sum(
        s.value
        for s in samples
        if s.name == "reranker_request_duration_seconds_bucket" and s.labels["le"] == "0.2"
    )
    assert within_budget <= burst - statuses.count(429)
