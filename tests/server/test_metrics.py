"""/metrics: the contract's names and labels, per-k latency, rejections by reason, probes left out."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from reranker_server.api import create_app
from reranker_server.config import Settings
from reranker_server.engine import Engine
from reranker_server.metrics import k_bucket

from tests.server.conftest import TEST_K_CAP, running_app
from tests.server.texts import QUERY, passages

CONTRACT_METRICS = {
    "reranker_request_duration_seconds": "histogram",
    "reranker_requests": "counter",
    "reranker_queue_wait_seconds": "histogram",
    "reranker_inference_seconds": "histogram",
    "reranker_batch_pairs": "histogram",
    "reranker_batch_tokens": "histogram",
    "reranker_padding_efficiency": "histogram",
    "reranker_requests_in_flight": "gauge",
    "reranker_queued_tokens": "gauge",
    "reranker_rejections": "counter",
    "reranker_ready": "gauge",
    "reranker_warmup_duration_seconds": "gauge",
    "reranker_warmup_kcap_latency_seconds": "gauge",
    "reranker_model_info": "gauge",
}


async def scrape(client: httpx.AsyncClient) -> list[Sample]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matching = [
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(matching)


async def test_every_contract_metric_is_exported_with_its_type(client: httpx.AsyncClient) -> None:
    families = {f.name: f.type for f in text_string_to_metric_families((await client.get("/metrics")).text)}
    assert {name: families.get(name) for name in CONTRACT_METRICS} == CONTRACT_METRICS


async def test_latency_is_recorded_per_endpoint_and_k_bucket(client: httpx.AsyncClient) -> None:
    await client.post("/v1/rerank", json={"query": QUERY, "documents": passages(5)})
    await client.post("/rerank", json={"query": QUERY, "texts": passages(TEST_K_CAP)})
    samples = await scrape(client)
    count = "reranker_request_duration_seconds_count"
    assert value(samples, count, endpoint="/v1/rerank", k_bucket="1-10") == 1
    assert value(samples, count, endpoint="/rerank", k_bucket="11-25") == 1
    assert value(samples, "reranker_requests_total", endpoint="/v1/rerank", code="200") == 1
    buckets = [
        s
        for s in samples
        if s.name == "reranker_request_duration_seconds_bucket" and s.labels["k_bucket"] == "1-10"
    ]
    assert len(buckets) >= 40


async def test_refusals_are_counted_by_reason_but_are_not_latency_samples(client: httpx.AsyncClient) -> None:
    await client.post("/v1/rerank", json={"query": QUERY, "documents": passages(TEST_K_CAP + 1)})
    await client.post("/v1/rerank", json={"query": "", "documents": ["a"]})
    samples = await scrape(client)
    assert value(samples, "reranker_rejections_total", reason="k_cap") == 1
    assert value(samples, "reranker_rejections_total", reason="bad_request") == 1
    assert value(samples, "reranker_requests_total", endpoint="/v1/rerank", code="413") == 1
    assert value(samples, "reranker_requests_total", endpoint="/v1/rerank", code="422") == 1
    assert value(samples, "reranker_request_duration_seconds_count") == 0


async def test_probes_are_not_request_metrics(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/ready", "/metrics", "/info"):
        await client.get(path)
    endpoints = {
        s.labels.get("endpoint") for s in await scrape(client) if s.name.startswith("reranker_request")
    }
    assert endpoints <= {None, "/rerank", "/v1/rerank", "/v2/rerank"}


async def test_batches_padding_and_queue_are_observed(client: httpx.AsyncClient) -> None:
    await client.post("/v1/rerank", json={"query": QUERY, "documents": passages(10, max_words=100)})
    samples = await scrape(client)
    assert value(samples, "reranker_inference_seconds_count") >= 1
    assert value(samples, "reranker_batch_pairs_sum") >= 10
    assert value(samples, "reranker_batch_tokens_sum") > 0
    efficiency = value(samples, "reranker_padding_efficiency_sum") / value(
        samples, "reranker_padding_efficiency_count"
    )
    assert 0 < efficiency <= 1
    assert value(samples, "reranker_queued_tokens") == 0
    assert value(samples, "reranker_requests_in_flight") == 0


async def test_readiness_warm_up_and_model_are_exported(client: httpx.AsyncClient, engine: Engine) -> None:
    samples = await scrape(client)
    assert value(samples, "reranker_ready") == 1
    assert value(samples, "reranker_warmup_duration_seconds") > 0
    assert value(samples, "reranker_warmup_kcap_latency_seconds") > 0
    (info,) = [s for s in samples if s.name == "reranker_model_info"]
    assert info.labels == {
        "model": engine.files.name,
        "revision": "main",
        "backend": "cpu",
        "quantization": "none",
        "max_length": "128",
        "digest": "",
    }


async def test_each_app_has_its_own_registry(
    settings_factory: Callable[..., Settings], engine: Engine
) -> None:
    first, second = (
        create_app(settings_factory(), engine=engine),
        create_app(settings_factory(), engine=engine),
    )
    assert first.state.services.metrics.registry is not second.state.services.metrics.registry
    async with running_app(first) as client:
        assert value(await scrape(client), "reranker_ready") == 1


@pytest.mark.parametrize(
    ("candidates", "bucket"),
    [
        (1, "1-10"),
        (10, "1-10"),
        (11, "11-25"),
        (25, "11-25"),
        (26, "26-50"),
        (100, "51-100"),
        (250, "101-250"),
        (251, "251+"),
    ],
)
def test_k_buckets_have_the_contract_boundaries(candidates: int, bucket: str) -> None:
    assert k_bucket(candidates) == bucket
