"""The engine: scores equal eager PyTorch, independent of batch companions, truncation keeps the query."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from reranker_server.engine import BackendUnavailable, Engine
from reranker_server.loading import load_engine

from tests.conftest import Reference
from tests.server.conftest import engine_logits, make_settings
from tests.server.texts import QUERY, passages

TOLERANCE = 1e-4


def test_scores_equal_eager_pytorch(engine: Engine, torch_reference: Reference) -> None:
    documents = [*passages(30, max_words=300), "", "Ünïcode, punctuation! and ☃ symbols 東京"]
    ours = engine_logits(engine, QUERY, documents)
    reference = torch_reference(QUERY, documents, engine.max_length)
    np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=0)
    assert np.argsort(-ours, kind="stable").tolist() == np.argsort(-reference, kind="stable").tolist()


def test_scores_do_not_depend_on_batch_companions(engine: Engine) -> None:
    documents = passages(12, max_words=150, seed=1)
    together = engine_logits(engine, QUERY, documents)
    alone = np.array([engine_logits(engine, QUERY, [document])[0] for document in documents])
    reversed_batch = engine_logits(engine, QUERY, documents[::-1])[::-1]
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)
    np.testing.assert_allclose(together, reversed_batch, atol=1e-5, rtol=0)


def test_long_passages_are_cut_and_the_query_is_kept(engine: Engine) -> None:
    pairs = engine.encode(QUERY, passages(1, min_words=400, max_words=400))
    query_tokens = len(engine._plain.encode(QUERY, add_special_tokens=False).ids)
    assert pairs.lengths[0] == engine.max_length
    assert int((pairs.type_ids[0] == 0).sum()) == query_tokens + 2  # [CLS] query [SEP]


def test_a_query_longer_than_max_length_is_cut_instead_of_failing(engine: Engine) -> None:
    long_query = passages(1, min_words=500, max_words=500, seed=3)[0]
    pairs = engine.encode(long_query, ["a short passage", passages(1, min_words=400, max_words=400)[0]])
    assert pairs.lengths.tolist() == [engine.max_length, engine.max_length]
    assert int((pairs.type_ids[1] == 0).sum()) >= engine.max_length // 2 - 2


def test_a_huge_query_scores_like_its_first_max_length_tokens(engine: Engine) -> None:
    words = passages(1, min_words=engine.max_length, max_words=engine.max_length, seed=5)[0]
    huge = words + " " + "x" * 1_000_000
    np.testing.assert_allclose(
        engine_logits(engine, huge, ["a passage"]), engine_logits(engine, words, ["a passage"]), atol=1e-6
    )


def test_max_tokens_per_doc_scores_the_cut_passage(engine: Engine) -> None:
    document = passages(1, min_words=80, max_words=80, seed=4)[0]
    cut = engine_logits(engine, QUERY, [document], max_tokens_per_doc=10)
    first_ten_tokens = engine.cut_documents([document], 10)[0]
    assert len(engine._plain.encode(first_ten_tokens, add_special_tokens=False).ids) == 10
    np.testing.assert_allclose(cut, engine_logits(engine, QUERY, [first_ten_tokens]), atol=1e-6)


def test_max_length_is_bounded_by_the_models_position_table(test_model_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(test_model_dir, tmp_path, max_length=1024, max_batch_tokens=4096)
    assert load_engine(settings).max_length == 512


def test_gpu_backend_without_cuda_fails_with_a_reason_instead_of_using_cpu(
    test_model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(BackendUnavailable, match=r"CUDAExecutionProvider.*RERANKER_BACKEND=cpu"):
        load_engine(make_settings(test_model_dir, tmp_path, backend="gpu"))
