"""`make-test-model` writes, without torch, a checkpoint and a graph that agree with PyTorch and fuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from reranker_server.preparation.fusion import optimize_bert
from reranker_server.testmodel import make_test_model

from tests.conftest import TEST_MODEL_SHAPE, pytorch_logits
from tests.server.texts import QUERY, passages

MAX_LENGTH = 64
DOCUMENTS = passages(6, max_words=80)


def graph_logits(model_dir: Path, documents: list[str]) -> np.ndarray:
    """The written graph run as it is, on a padded batch the way transformers tokenises it."""
    from transformers import AutoTokenizer

    batch = AutoTokenizer.from_pretrained(model_dir)(
        [QUERY] * len(documents),
        documents,
        padding=True,
        truncation=True,
        max_length=MAX_LENGTH,
        return_tensors="np",
    )
    session = ort.InferenceSession(str(model_dir / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {item.name: batch[item.name].astype(np.int64) for item in session.get_inputs()}
    return session.run(None, feeds)[0][:, 0]


@pytest.mark.parametrize("architecture", ["bert", "xlm-roberta"])
def test_the_graph_scores_what_pytorch_scores_on_the_checkpoint_beside_it(architecture: str, tmp_path: Path):
    model_dir = make_test_model(tmp_path / architecture, TEST_MODEL_SHAPE, architecture=architecture)
    expected = pytorch_logits(model_dir)(QUERY, DOCUMENTS, MAX_LENGTH)
    np.testing.assert_allclose(graph_logits(model_dir, DOCUMENTS), expected, atol=1e-5)
    assert np.ptp(expected) > 0.05, "random heads must still spread the scores for ranking tests"


def fused_operators(architecture: str, tmp_path: Path, *, use_gpu: bool) -> dict[str, int]:
    """How many of each fused operator ONNX Runtime's transformers optimizer makes of a test graph."""
    model_dir = make_test_model(tmp_path / architecture, TEST_MODEL_SHAPE, architecture=architecture)
    config = json.loads((model_dir / "config.json").read_text())
    optimized = optimize_bert(model_dir / "onnx" / "model.onnx", config, use_gpu=use_gpu)
    return optimized.get_fused_operator_statistics()


@pytest.mark.parametrize("architecture", ["bert", "xlm-roberta"])
def test_onnx_runtime_fuses_every_block_of_the_graph_as_it_fuses_a_torch_export(
    architecture: str, tmp_path: Path
):
    fused = fused_operators(architecture, tmp_path, use_gpu=True)
    assert fused["Attention"] == TEST_MODEL_SHAPE.layers
    assert fused["SkipLayerNormalization"] == 2 * TEST_MODEL_SHAPE.layers
    assert fused["BiasGelu"] == TEST_MODEL_SHAPE.layers
    # ONNX Runtime 1.2x fuses BERT's embedding block only (its RoBERTa pattern is switched off).
    assert fused["EmbedLayerNormalization"] == (architecture == "bert")


@pytest.mark.parametrize("architecture", ["bert", "xlm-roberta"])
def test_the_cpu_fusion_keeps_attention_and_leaves_layer_norm_and_gelu_plain(
    architecture: str, tmp_path: Path
):
    fused = fused_operators(architecture, tmp_path, use_gpu=False)
    assert fused["Attention"] == TEST_MODEL_SHAPE.layers
    assert fused["Gelu"] == TEST_MODEL_SHAPE.layers
    assert fused["LayerNormalization"] == 2 * TEST_MODEL_SHAPE.layers + (architecture != "bert")
    assert not fused.get("SkipLayerNormalization")
    assert not fused.get("BiasGelu")


def test_the_same_seed_writes_the_same_model_and_another_seed_another(tmp_path: Path):
    from dataclasses import replace

    first = make_test_model(tmp_path / "a", TEST_MODEL_SHAPE)
    again = make_test_model(tmp_path / "b", TEST_MODEL_SHAPE)
    other = make_test_model(tmp_path / "c", replace(TEST_MODEL_SHAPE, seed=TEST_MODEL_SHAPE.seed + 1))
    weights = "model.safetensors"
    assert (first / weights).read_bytes() == (again / weights).read_bytes()
    assert (first / weights).read_bytes() != (other / weights).read_bytes()


def test_transformers_reads_the_tokenizer_and_config_it_did_not_write(tmp_path: Path):
    from transformers import AutoConfig, AutoTokenizer

    model_dir = make_test_model(tmp_path / "m", TEST_MODEL_SHAPE, with_onnx=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.is_fast
    assert tokenizer.model_max_length == TEST_MODEL_SHAPE.max_positions
    assert tokenizer.decode(tokenizer("rerank the query")["input_ids"]) == "[CLS] rerank the query [SEP]"
    config = AutoConfig.from_pretrained(model_dir)
    assert (config.num_hidden_layers, config.hidden_size) == (
        TEST_MODEL_SHAPE.layers,
        TEST_MODEL_SHAPE.hidden,
    )
