"""The batcher: routing, isolation of bad requests, deadlines without model use, a queue that empties."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
import pytest
from reranker_server.batcher import Batcher
from reranker_server.engine import EncodedPairs, Engine, Feeds, Truncation
from reranker_server.errors import DeadlineExceeded, InferenceFailed
from reranker_server.metrics import Metrics

from tests.server.conftest import GatedEngine, engine_logits, wait_for
from tests.server.texts import QUERY, passages

POISON = "<<this passage makes the model fail>>"


@pytest.fixture
async def make_batcher() -> AsyncIterator[Callable[..., Batcher]]:
    started: list[Batcher] = []

    def make(engine: Engine, *, max_batch_tokens: int = 2048, max_wait_s: float = 0.005) -> Batcher:
        batcher = Batcher(
            engine, max_batch_tokens=max_batch_tokens, max_wait_s=max_wait_s, metrics=Metrics.create()
        )
        batcher.start()
        started.append(batcher)
        return batcher

    yield make
    for batcher in started:
        await asyncio.to_thread(batcher.stop, 10.0)


class PoisonedEngine(GatedEngine):
    """The real model, except that one marker passage tokenises to an id outside the vocabulary:
    ONNX Runtime then fails the whole call its pair is in, as it would on a corrupt input."""

    def encode(
        self,
        query: str,
        documents: Sequence[str],
        max_tokens_per_doc: int | None = None,
        *,
        truncation: Truncation = "right",
    ) -> EncodedPairs:
        pairs = super().encode(query, documents, max_tokens_per_doc, truncation=truncation)
        for row, document in enumerate(documents):
            if document == POISON:
                pairs.ids[row][1] = 10**6
        return pairs


async def hold_model_busy(batcher: Batcher, engine: GatedEngine) -> asyncio.Task:
    """A request the gated model is running: what is submitted now queues up into one round."""
    busy = asyncio.create_task(batcher.score(QUERY, passages(1, seed=99), timeout_s=30))
    await asyncio.to_thread(engine.waiting.wait, 10)
    return busy


async def test_concurrent_requests_each_get_their_own_scores_in_order(
    engine: Engine, make_batcher: Callable[..., Batcher]
) -> None:
    batcher = make_batcher(engine, max_wait_s=0.02)
    requests = [passages(size, max_words=120, seed=size) for size in range(1, 21)]
    results = await asyncio.gather(*(batcher.score(QUERY, documents, timeout_s=30) for documents in requests))
    for documents, result in zip(requests, results, strict=True):
        np.testing.assert_allclose(result.logits, engine_logits(engine, QUERY, documents), atol=1e-5)


async def test_a_request_that_finds_the_model_idle_is_not_held_back(
    engine: Engine, make_batcher: Callable[..., Batcher]
) -> None:
    batcher = make_batcher(engine, max_wait_s=60.0)
    documents = passages(3)
    result = await asyncio.wait_for(batcher.score(QUERY, documents, timeout_s=30), timeout=20)
    np.testing.assert_allclose(result.logits, engine_logits(engine, QUERY, documents), atol=1e-5)


async def test_requests_arriving_while_the_model_is_busy_share_a_micro_batch(
    gated_engine: GatedEngine, make_batcher: Callable[..., Batcher]
) -> None:
    batcher = make_batcher(gated_engine, max_wait_s=0.05)
    busy = await hold_model_busy(batcher, gated_engine)
    waiting = [
        batcher.score(QUERY, passages(2, min_words=4, max_words=6, seed=seed), timeout_s=30)
        for seed in (1, 2, 3)
    ]
    queued = asyncio.gather(*waiting)
    await wait_for(lambda: _true(len(batcher._intake) == 0), 10, "the tokeniser to take the waiting requests")
    gated_engine.gate.set()
    await asyncio.gather(busy, queued)
    assert gated_engine.batch_sizes == [1, 6]


async def test_waiting_requests_beyond_one_calls_budget_are_sorted_together(
    gated_engine: GatedEngine, make_batcher: Callable[..., Batcher]
) -> None:
    batcher = make_batcher(gated_engine, max_batch_tokens=64, max_wait_s=0.05)
    busy = await hold_model_busy(batcher, gated_engine)
    requests = [
        [
            *passages(1, min_words=3, max_words=4, seed=seed),
            *passages(1, min_words=40, max_words=45, seed=seed),
        ]
        for seed in (1, 2, 3)
    ]
    queued = asyncio.gather(*(batcher.score(QUERY, documents, timeout_s=30) for documents in requests))
    await wait_for(lambda: _true(len(batcher._intake) == 0), 10, "the tokeniser to take the waiting requests")
    gated_engine.gate.set()
    await busy
    results = await queued
    # One round: the three short pairs share a call, each long pair (over the budget's half) runs alone.
    assert gated_engine.batch_sizes == [1, 3, 1, 1, 1]
    for documents, result in zip(requests, results, strict=True):
        np.testing.assert_allclose(result.logits, engine_logits(gated_engine, QUERY, documents), atol=1e-5)


async def test_a_request_that_cannot_be_tokenised_fails_alone(
    engine: Engine, make_batcher: Callable[..., Batcher]
) -> None:
    batcher = make_batcher(engine, max_wait_s=0.05)
    good = passages(5, seed=7)
    outcomes = await asyncio.gather(
        batcher.score(QUERY, good, timeout_s=30),
        batcher.score(QUERY, ["fine", "lone surrogate \ud800 from a JSON escape"], timeout_s=30),
        batcher.score(QUERY, good[:2], timeout_s=30),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], InferenceFailed)
    np.testing.assert_allclose(outcomes[0].logits, engine_logits(engine, QUERY, good), atol=1e-5)  # type: ignore[union-attr]
    np.testing.assert_allclose(outcomes[2].logits, engine_logits(engine, QUERY, good[:2]), atol=1e-5)  # type: ignore[union-attr]


async def test_a_request_that_breaks_the_model_fails_alone(
    engine: Engine, make_batcher: Callable[..., Batcher]
) -> None:
    poisoned = PoisonedEngine(engine)
    batcher = make_batcher(poisoned, max_wait_s=0.05)
    busy = await hold_model_busy(batcher, poisoned)
    good = passages(4, min_words=2, max_words=4, seed=8)
    outcomes = asyncio.gather(
        batcher.score(QUERY, good, timeout_s=30),
        batcher.score(QUERY, [good[0], POISON], timeout_s=30),
        return_exceptions=True,
    )
    await wait_for(lambda: _true(len(batcher._intake) == 0), 10, "the tokeniser to take both requests")
    poisoned.gate.set()
    await busy
    good_result, poisoned_result = await outcomes
    assert isinstance(poisoned_result, InferenceFailed)
    np.testing.assert_allclose(good_result.logits, engine_logits(engine, QUERY, good), atol=1e-5)  # type: ignore[union-attr]
    assert poisoned.batch_sizes[1] == 6, "both requests were in the micro-batch that failed"


async def test_a_request_that_expires_in_the_queue_never_reaches_the_model(
    gated_engine: GatedEngine, make_batcher: Callable[..., Batcher]
) -> None:
    batcher = make_batcher(gated_engine)
    busy = asyncio.create_task(batcher.score(QUERY, passages(3), timeout_s=30))
    await asyncio.to_thread(gated_engine.waiting.wait, 10)
    with pytest.raises(DeadlineExceeded):
        await batcher.score(QUERY, passages(8, seed=2), timeout_s=0.05)
    gated_engine.gate.set()
    await busy
    await wait_for(lambda: _true(batcher.queued_tokens == 0), 10, "the queue to empty")
    assert gated_engine.rows_run == 3


async def test_queued_tokens_count_admitted_work_and_return_to_zero(
    gated_engine: GatedEngine, make_batcher: Callable[..., Batcher]
) -> None:
    batcher = make_batcher(gated_engine)
    first = asyncio.create_task(batcher.score(QUERY, passages(3), timeout_s=30))
    await asyncio.to_thread(gated_engine.waiting.wait, 10)
    second = asyncio.create_task(batcher.score(QUERY, passages(5, seed=1), timeout_s=30))
    await wait_for(lambda: _true(batcher.queued_tokens > 0), 10, "queued tokens to count the waiting work")
    gated_engine.gate.set()
    await asyncio.gather(first, second)
    await wait_for(lambda: _true(batcher.queued_tokens == 0), 10, "the queue to empty")
    assert batcher.metrics.queued_tokens._value.get() == 0


async def test_a_request_that_gives_up_while_its_last_batch_runs_leaves_no_tokens_queued(
    gated_engine: GatedEngine, make_batcher: Callable[..., Batcher]
) -> None:
    """Its deadline passes inside the model call: the answer is dropped, and its tokens leave the
    queue with it (left counted, they would refuse later requests for work that no longer exists)."""
    batcher = make_batcher(gated_engine)
    with pytest.raises(DeadlineExceeded):
        await batcher.score(QUERY, passages(1), timeout_s=0.2)
    assert gated_engine.waiting.is_set(), "the deadline passed while the model ran its batch"
    gated_engine.gate.set()
    await wait_for(lambda: _true(gated_engine.rows_run == 1), 10, "the batch to finish")
    await wait_for(lambda: _true(batcher.queued_tokens == 0), 10, "the queue to empty")


async def test_micro_batches_respect_the_token_budget(
    engine: Engine, make_batcher: Callable[..., Batcher]
) -> None:
    seen: list[int] = []

    class Recording(Engine):
        def run(self, feeds: Feeds) -> np.ndarray:
            seen.append(feeds.padded_tokens)
            return super().run(feeds)

    recording = Recording(engine.files, backend="cpu", max_length=engine.max_length, threads=1)
    batcher = make_batcher(recording, max_batch_tokens=512)
    await batcher.score(QUERY, passages(40, min_words=10, max_words=200), timeout_s=30)
    assert seen
    assert max(seen) <= 512


async def _true(value: bool) -> bool:
    return value
