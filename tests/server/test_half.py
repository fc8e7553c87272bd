"""fp16 graphs for the gpu backend, checked where no GPU is: their structure, and their scores on ONNX
Runtime's CPU provider (which runs the same fp16 graph) against fp32 PyTorch."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from reranker_server.artefact import CANARY_MIN_SPEARMAN, Recipe, canary_tolerance, read_artefact, spearman
from reranker_server.config import Settings, SettingsError, settings_from
from reranker_server.preparation.half import FP32_OPS, convert_fp16
from reranker_server.preparation.prepare import prepare
from reranker_server.preparation.store import ModelStore

from tests.conftest import Reference, pytorch_logits
from tests.server.texts import QUERY, passages

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
DOCUMENTS = passages(24, max_words=80, seed=16)
MAX_LENGTH = 128


def half_graph(model_dir: Path, tmp: Path, config: dict | None = None) -> tuple[onnx.ModelProto, Path]:
    out = tmp / "fp16.onnx"
    convert_fp16(
        model_dir / "onnx" / "model.onnx", out, config or json.loads((model_dir / "config.json").read_text())
    )
    return onnx.load(str(out)), out


def float_initializers(graph: onnx.ModelProto) -> Counter:
    return Counter(init.data_type for init in graph.graph.initializer if init.data_type in (FLOAT, FLOAT16))


def graph_logits(graph_path: Path, model_dir: Path, documents: list[str]) -> np.ndarray:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_LENGTH)
    session = ort.InferenceSession(str(graph_path), providers=["CPUExecutionProvider"])
    names = {item.name for item in session.get_inputs()}
    logits = []
    for document in documents:
        encoded = tokenizer.encode(QUERY, document)
        feeds = {
            "input_ids": np.array([encoded.ids], dtype=np.int64),
            "attention_mask": np.array([encoded.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoded.type_ids], dtype=np.int64),
        }
        logits.append(float(session.run(None, {k: v for k, v in feeds.items() if k in names})[0].ravel()[0]))
    return np.array(logits)


def test_inputs_and_logits_keep_their_types_and_the_weights_are_half(test_model_dir: Path, tmp_path: Path):
    graph, _ = half_graph(test_model_dir, tmp_path)
    assert {item.name: item.type.tensor_type.elem_type for item in graph.graph.input} == {
        "input_ids": onnx.TensorProto.INT64,
        "attention_mask": onnx.TensorProto.INT64,
        "token_type_ids": onnx.TensorProto.INT64,
    }
    assert [item.type.tensor_type.elem_type for item in graph.graph.output] == [FLOAT]
    weights = float_initializers(graph)
    assert weights[FLOAT16] > 0
    assert weights[FLOAT] == 0, "a fused graph has no fp32 weights left"


def test_a_bert_graph_is_fused_for_the_gpu(test_model_dir: Path, tmp_path: Path):
    graph, _ = half_graph(test_model_dir, tmp_path)
    ops = Counter(node.op_type for node in graph.graph.node)
    assert ops["Attention"] == 2
    assert ops["SkipLayerNormalization"] > 0
    assert not set(FP32_OPS) & set(ops), "fusion leaves no unfused LayerNorm or Softmax"


def test_an_unfused_graph_keeps_layer_norm_and_softmax_in_fp32(test_model_dir: Path, tmp_path: Path):
    config = {**json.loads((test_model_dir / "config.json").read_text()), "model_type": "unfusable"}
    graph, _ = half_graph(test_model_dir, tmp_path, config)
    produced = {output: node for node in graph.graph.node for output in node.output}
    kept = [node for node in graph.graph.node if node.op_type in FP32_OPS]
    assert kept, "the test model has LayerNormalization and Softmax nodes"
    for node in kept:
        data = produced.get(node.input[0])
        assert data is not None
        assert data.op_type == "Cast", f"{node.op_type} {node.name} reads fp16 without a cast to fp32"
        assert next(a.i for a in data.attribute if a.name == "to") == FLOAT
    assert float_initializers(graph)[FLOAT16] > 0


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_fp16_scores_stay_within_the_canary_tolerance_of_fp32_pytorch(
    test_model_dir: Path, torch_reference: Reference, tmp_path: Path, fused: bool
):
    config = json.loads((test_model_dir / "config.json").read_text())
    _, path = half_graph(test_model_dir, tmp_path, config if fused else {**config, "model_type": "unfusable"})
    reference = torch_reference(QUERY, DOCUMENTS, MAX_LENGTH)
    logits = graph_logits(path, test_model_dir, DOCUMENTS)
    assert np.abs(logits - reference).max() <= canary_tolerance("fp16", list(reference))
    assert spearman(reference, logits) >= CANARY_MIN_SPEARMAN["fp16"]


@pytest.mark.slow
def test_an_xlm_roberta_checkpoint_converts_and_keeps_its_ranking(
    checkpoints: dict[str, Path], tmp_path: Path
):
    store = ModelStore(tmp_path / "cache", offline=True)
    files = store.resolve(str(checkpoints["xlm-roberta"]), "main", "fp16")
    assert files.fused
    reference = pytorch_logits(checkpoints["xlm-roberta"])(QUERY, DOCUMENTS, MAX_LENGTH)
    logits = graph_logits(files.graph, files.tokenizer.parent, DOCUMENTS)
    assert np.abs(logits - reference).max() <= canary_tolerance("fp16", list(reference))
    assert spearman(reference, logits) >= CANARY_MIN_SPEARMAN["fp16"]


@pytest.mark.slow
def test_prepare_makes_a_checked_fp16_artefact_for_the_gpu(checkpoints: dict[str, Path], tmp_path: Path):
    recipe = Recipe(model=str(checkpoints["bert"]), revision="main", backend="gpu", quantization="fp16")
    prepared = prepare(recipe, out=tmp_path / "artefact", cache_dir=tmp_path / "cache", offline=True)
    files, manifest = read_artefact(prepared.directory)
    assert manifest.recipe == recipe
    assert manifest.fused
    assert manifest.canary is not None
    assert manifest.canary.tolerance == canary_tolerance("fp16", manifest.canary.logits)
    assert float_initializers(onnx.load(str(files.graph)))[FLOAT16] > 0


@pytest.mark.parametrize(
    ("backend", "quantize", "message"),
    [("cpu", "fp16", "quantize fp16 is for the GPU"), ("gpu", "int8", "quantize int8 is dynamic CPU")],
)
def test_each_precision_is_refused_on_the_other_backend(backend: str, quantize: str, message: str):
    with pytest.raises(SettingsError, match=message):
        settings_from({}, {"RERANKER_MODEL": "m", "RERANKER_BACKEND": backend, "RERANKER_QUANTIZE": quantize})


def test_fp16_on_the_gpu_backend_is_a_valid_setting():
    settings = Settings(model="m", backend="gpu", quantize="fp16")
    assert settings.recipe.quantization == "fp16"
