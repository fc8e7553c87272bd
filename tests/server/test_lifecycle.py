"""Readiness follows the model: 503 with a reason while loading, warming up or failed; /health never does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
from reranker_server.api import create_app
from reranker_server.config import Settings
from reranker_server.engine import Engine
from reranker_server.samples import WARMUP_QUERY
from reranker_server.warmup import Shape, documents

from tests.server.conftest import TEST_K_CAP, GatedEngine, running_app, wait_for
from tests.server.texts import QUERY

VALID = {"query": QUERY, "documents": ["one passage", "another passage"]}


async def test_ready_is_503_while_warming_up_and_200_after(
    settings_factory: Callable[..., Settings], gated_engine: GatedEngine
) -> None:
    app = create_app(settings_factory(), engine=gated_engine)
    async with running_app(app, wait_ready=False) as client:
        await asyncio.to_thread(gated_engine.waiting.wait, 10)
        warming = await client.get("/ready")
        assert warming.status_code == 503
        assert warming.json()["status"] == "warming_up"
        assert (await client.get("/health")).status_code == 200
        early = await client.post("/v1/rerank", json=VALID)
        assert early.status_code == 503
        assert early.json()["error"]["code"] == "not_ready"
        gated_engine.gate.set()

        async def ready() -> bool:
            return (await client.get("/ready")).status_code == 200

        await wait_for(ready, 30, "/ready to turn 200 after warm-up")
        assert (await client.get("/ready")).json() == {"status": "ready"}
        assert (await client.post("/v1/rerank", json=VALID)).status_code == 200


async def test_warm_up_runs_one_pair_and_k_cap_pairs_at_short_and_full_length(
    settings_factory: Callable[..., Settings], gated_engine: GatedEngine
) -> None:
    gated_engine.gate.set()
    async with running_app(create_app(settings_factory(warmup_requests=2), engine=gated_engine)) as client:
        info = (await client.get("/info")).json()
    assert gated_engine.rows_run == 2 * (1 + 1 + TEST_K_CAP + TEST_K_CAP)
    assert info["warmup_seconds"] > 0
    assert 0 < info["warmup_kcap_latency_seconds"] <= info["warmup_seconds"]


async def test_gpu_backend_without_cuda_is_alive_but_never_ready(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    termination_log = tmp_path / "termination-log"
    settings = settings_factory(backend="gpu", termination_log=termination_log)
    async with running_app(create_app(settings), wait_ready=False) as client:

        async def failed() -> bool:
            return (await client.get("/ready")).json()["status"] == "failed"

        await wait_for(failed, 30, "readiness to fail")
        ready = await client.get("/ready")
        health = await client.get("/health")
        rerank = await client.post("/v1/rerank", json=VALID)
    assert ready.status_code == 503
    assert "CUDAExecutionProvider" in ready.json()["reason"]
    assert "RERANKER_BACKEND=cpu" in ready.json()["reason"]
    assert health.status_code == 200
    assert rerank.status_code == 503
    assert termination_log.read_text().startswith("GPUUnavailable: backend gpu"), "what the operator shows"


async def test_a_missing_model_keeps_ready_503_naming_it(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-model"
    async with running_app(create_app(settings_factory(model=str(missing))), wait_ready=False) as client:

        async def failed() -> bool:
            return (await client.get("/ready")).json()["status"] == "failed"

        await wait_for(failed, 30, "readiness to fail")
        reason = (await client.get("/ready")).json()["reason"]
    assert str(missing) in reason
    assert "does not exist" in reason


async def test_info_describes_what_is_served(client: httpx.AsyncClient, engine: Engine) -> None:
    info = (await client.get("/info")).json()
    assert info["model"] == str(engine.files.name)
    assert info["backend"] == "cpu"
    assert info["execution_providers"] == ["CPUExecutionProvider"]
    assert info["quantization"] == "none"
    assert info["max_length"] == 128
    assert info["max_candidates"] == TEST_K_CAP
    assert info["status"] == "ready"
    assert "MEANINGLESS" in info["test_model_note"]


def test_warm_up_passages_fill_max_length_or_stay_short(engine: Engine) -> None:
    long = engine.encode(WARMUP_QUERY, documents(Shape(2, long=True), engine.max_length))
    short = engine.encode(WARMUP_QUERY, documents(Shape(2, long=False), engine.max_length))
    assert long.lengths.tolist() == [engine.max_length] * 2
    assert max(short.lengths) < engine.max_length // 4
