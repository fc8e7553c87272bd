"""int8 smoothing: outlier channels move into weights, fp32 results stay the same, int8 gets closer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from reranker_server.int8weights import weights_for_this_cpu
from reranker_server.preparation.quantize import QUANTIZED_OPS, calibration_batches, quantize_int8
from reranker_server.preparation.smoothing import (
    channel_maxima,
    probe_runner,
    smooth,
    smoothable_nodes,
    smoothing_scales,
)
from tokenizers import Tokenizer

from tests.server.texts import QUERY, passages

#: A LayerNorm channel this many times larger than the rest (the fine-tuned MiniLM-L6 carries ~15x).
OUTLIER_GAIN = 20.0
MAX_LENGTH = 64


def graph_of(model_dir: Path) -> Path:
    return model_dir / "onnx" / "model.onnx"


def logits(graph: Path, tokenizer: Path) -> np.ndarray:
    """Scores of a fixed set of pairs of varied lengths, padded to the longest."""
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    inputs = {i.name: np.int64 for i in session.get_inputs()}
    encoder = Tokenizer.from_file(str(tokenizer))
    encoder.enable_truncation(MAX_LENGTH)
    encoder.enable_padding()
    encodings = encoder.encode_batch([(QUERY, passage) for passage in passages(24, max_words=60)])
    feeds = {
        "input_ids": np.array([e.ids for e in encodings]),
        "token_type_ids": np.array([e.type_ids for e in encodings]),
        "attention_mask": np.array([e.attention_mask for e in encodings]),
    }
    return session.run(None, {name: feeds[name].astype(dtype) for name, dtype in inputs.items()})[0][:, 0]


@pytest.fixture
def outlier_model_dir(test_model_dir: Path, tmp_path: Path) -> Path:
    """The test model, rewritten so that its matrix products read a LayerNorm outlier channel.

    Each LayerNorm feeding products gets a twin whose channel 0 is OUTLIER_GAIN times larger and
    the products' weight rows for that channel that many times smaller: scores are unchanged in
    fp32, only the activations' range grows, as in pretrained encoders (which carry ~15x).
    """
    target = tmp_path / "outlier-model"
    shutil.copytree(test_model_dir, target)
    model = onnx.load(str(graph_of(target)))
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    # The exporter shares identical LayerNorm parameters through Identity nodes.
    aliases = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Identity"}
    for norm in [node for node in model.graph.node if node.op_type == "LayerNormalization"]:
        products = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[0] == norm.output[0]]
        if not products:
            continue
        twin = onnx.NodeProto()
        twin.CopyFrom(norm)
        twin.name, twin.output[0] = f"{norm.name}_twin", f"{norm.output[0]}_twin"
        for position in (1, 2):
            values = numpy_helper.to_array(
                initializers[aliases.get(norm.input[position], norm.input[position])]
            )
            amplified = values.copy()
            amplified[0] *= OUTLIER_GAIN
            twin.input[position] = f"{twin.name}_{position}"
            model.graph.initializer.append(numpy_helper.from_array(amplified, twin.input[position]))
        model.graph.node.insert(list(model.graph.node).index(norm) + 1, twin)
        for product in products:
            product.input[0] = twin.output[0]
            weight = numpy_helper.to_array(initializers[product.input[1]]).copy()
            weight[0] /= OUTLIER_GAIN
            initializers[product.input[1]].CopyFrom(numpy_helper.from_array(weight, product.input[1]))
    onnx.save(model, str(graph_of(target)))
    return target


def test_scales_give_activation_and_weight_the_same_range_at_half_strength() -> None:
    activation_max = np.array([1.0, 16.0, 4.0])
    weight = np.array([[1.0, -1.0], [0.25, 0.0], [-4.0, 2.0]])
    scales = smoothing_scales(activation_max, weight, alpha=0.5)
    np.testing.assert_allclose(activation_max / scales, np.abs(weight).max(axis=1) * scales, rtol=1e-6)


def test_only_products_fed_by_a_layernorm_are_smoothed(test_model_dir: Path) -> None:
    model = onnx.load(str(graph_of(test_model_dir)))
    names = [node.name for node in smoothable_nodes(model.graph)]
    assert any("attention/self/query" in name for name in names)
    assert any("intermediate/dense" in name for name in names)
    assert not any("output/dense" in name for name in names)


def test_smoothing_leaves_fp32_scores_unchanged(outlier_model_dir: Path, tmp_path: Path) -> None:
    graph, tokenizer = graph_of(outlier_model_dir), outlier_model_dir / "tokenizer.json"
    model = onnx.load(str(graph))
    activations = [node.input[0] for node in smoothable_nodes(model.graph)]
    maxima = channel_maxima(
        activations,
        calibration_batches(
            tokenizer, MAX_LENGTH, dict.fromkeys(("input_ids", "token_type_ids", "attention_mask"), np.int64)
        ),
        probe_runner(model, activations, tmp_path),
    )
    assert smooth(model, maxima) == len(smoothable_nodes(onnx.load(str(graph)).graph))
    onnx.save(model, str(tmp_path / "smoothed.onnx"))
    np.testing.assert_allclose(
        logits(tmp_path / "smoothed.onnx", tokenizer), logits(graph, tokenizer), rtol=1e-4, atol=1e-4
    )


def test_int8_stays_close_to_fp32_when_a_layernorm_channel_carries_an_outlier(
    outlier_model_dir: Path, tmp_path: Path
) -> None:
    graph, tokenizer = graph_of(outlier_model_dir), outlier_model_dir / "tokenizer.json"
    weights = weights_for_this_cpu()
    quantize_int8(
        graph, tmp_path / "smoothed.onnx", tokenizer=tokenizer, max_length=MAX_LENGTH, weights=weights
    )
    quantize_dynamic(
        graph,
        tmp_path / "plain.onnx",
        op_types_to_quantize=QUANTIZED_OPS,
        weight_type=QuantType.QInt8 if weights == "s8" else QuantType.QUInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    reference = logits(graph, tokenizer)
    smoothed_error = np.abs(logits(tmp_path / "smoothed.onnx", tokenizer) - reference).mean()
    plain_error = np.abs(logits(tmp_path / "plain.onnx", tokenizer) - reference).mean()
    assert smoothed_error < plain_error / 4


def test_quantising_leaves_only_the_graph_behind(test_model_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "int8"
    target.mkdir()
    quantize_int8(
        graph_of(test_model_dir),
        target / "model.onnx",
        tokenizer=test_model_dir / "tokenizer.json",
        max_length=32,
        weights=weights_for_this_cpu(),
    )
    assert [path.name for path in target.iterdir()] == ["model.onnx"]
