"""Fixtures of the server tests: settings, a loaded engine, the app in-process, the torch reference."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from reranker_server.api import create_app
from reranker_server.config import Settings
from reranker_server.engine import Engine, Feeds
from reranker_server.loading import load_engine

#: Small k cap for in-process apps: warm-up runs k-cap pairs at max_length, keep it cheap.
TEST_K_CAP = 20
READY_TIMEOUT_S = 60.0


def make_settings(model_dir: Path, cache_dir: Path, **overrides: Any) -> Settings:
    """Settings for tests: no second metrics listener, one warm-up pass, a small k cap, and an SLO and
    deadline of 2 s, so that tests of concurrency are not shed by admission on a slow CI machine
    (tests of admission set their own)."""
    values: dict[str, Any] = {
        "model": str(model_dir),
        "cache_dir": cache_dir,
        "metrics_port": 0,
        "warmup_requests": 1,
        "max_candidates": TEST_K_CAP,
        "max_length": 128,
        "max_batch_tokens": 2048,
        "latency_slo_ms": 2000,
        "request_timeout_ms": 2000,
    }
    values.update(overrides)
    return Settings(**values)


def engine_logits(
    engine: Engine, query: str, documents: Sequence[str], max_tokens_per_doc: int | None = None
) -> np.ndarray:
    """The engine's raw logits for one request, in one call: what batched paths must reproduce."""
    pairs = engine.encode(query, documents, max_tokens_per_doc)
    return engine.run(engine.pad(pairs.ids, pairs.type_ids))


@pytest.fixture
def settings_factory(test_model_dir: Path, tmp_path: Path) -> Callable[..., Settings]:
    return lambda **overrides: make_settings(test_model_dir, tmp_path / "cache", **overrides)


@pytest.fixture(scope="session")
def engine(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The test model loaded once (max_length 128, the in-process apps' setting)."""
    return load_engine(make_settings(test_model_dir, tmp_path_factory.mktemp("cache"), max_length=128))


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Poll an async predicate until it holds; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_app(app: FastAPI, *, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, behind an in-process httpx client."""
    async with (
        LifespanManager(app, startup_timeout=READY_TIMEOUT_S, shutdown_timeout=READY_TIMEOUT_S) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test") as client,
    ):
        if wait_ready:

            async def ready() -> bool:
                return (await client.get("/ready")).status_code == 200

            await wait_for(ready, READY_TIMEOUT_S, "/ready to turn 200")
        yield client


@pytest.fixture
async def client(
    settings_factory: Callable[..., Settings], engine: Engine
) -> AsyncIterator[httpx.AsyncClient]:
    """A ready app on the shared engine with default test settings."""
    async with running_app(create_app(settings_factory(), engine=engine)) as client:
        yield client


class GatedEngine(Engine):
    """The real test model, whose ONNX Runtime calls wait at a gate the test opens.

    Lets a test hold the model busy (warm-up in progress, a queue building up) deterministically,
    without sleeps; everything else, scores included, is the real engine.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine.files, backend="cpu", max_length=engine.max_length, threads=1)
        self.gate = threading.Event()
        self.waiting = threading.Event()
        self.batch_sizes: list[int] = []

    @property
    def rows_run(self) -> int:
        return sum(self.batch_sizes)

    def run(self, feeds: Feeds) -> np.ndarray:
        self.waiting.set()
        if not self.gate.wait(READY_TIMEOUT_S):
            raise TimeoutError("the test never opened the gate")
        self.batch_sizes.append(feeds.batch_size)
        return super().run(feeds)


@pytest.fixture
def gated_engine(engine: Engine) -> GatedEngine:
    return GatedEngine(engine)
