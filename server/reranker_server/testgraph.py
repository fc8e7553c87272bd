"""The test model's ONNX graph, written node by node from its weights (onnx.helper, no torch).

It computes what transformers' eager BertForSequenceClassification / XLMRobertaForSequenceClassification
computes from the same weights, and it is laid out the way torch.onnx's TorchScript exporter writes a
BERT encoder (bias-first Adds, K transposed by 0-2-3-1, Erf GELU, the (1 - mask) x min additive mask),
because that is the pattern ONNX Runtime's attention fusion recognises. Tests check both claims: the
engine's scores against PyTorch's on the checkpoint, and the fused operator counts.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Architecture = Literal["bert", "xlm-roberta"]
Weights = Mapping[str, np.ndarray]

OPSET: Final = 17
#: ONNX IR version 8 (onnx 1.10+) is read by every ONNX Runtime release the server supports.
IR_VERSION: Final = 8
LAYER_NORM_EPS: Final = 1e-12
#: XLM-R's padding id: its positions are numbered from pad + 1, padding keeps the pad position.
XLMR_PAD_ID: Final = 1
#: What transformers adds to the scores of masked keys (torch.finfo(float32).min).
MASKED: Final = float(np.finfo(np.float32).min)


@dataclass
class GraphBuilder:
    """Collects nodes and initializers; every method returns the name of what it produced."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def module(self, path: str) -> Iterator[None]:
        """Names the nodes made inside after the transformers module they compute, as torch does
        (`/bert/encoder/layer/0/attention/self/query/MatMul_12`): profiles and tests can read them."""
        self.modules.append(path)
        try:
            yield
        finally:
            self.modules.pop()

    def tensor(self, name: str, value: np.ndarray | float | int) -> str:
        array = np.asarray(value, dtype=np.float32 if isinstance(value, float) else None)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes: object) -> str:
        scope = self.modules[-1].replace(".", "/") + "/" if self.modules else ""
        name = f"/{scope}{op_type}_{len(self.nodes)}"
        output = f"{name}_output_0"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=name, **attributes))
        return output


def build_graph(weights: Weights, *, architecture: Architecture, layers: int, heads: int) -> onnx.ModelProto:
    """The whole cross-encoder: inputs as the server feeds them, one logit per pair out."""
    g = GraphBuilder()
    base = "bert" if architecture == "bert" else "roberta"
    hidden = _embeddings(g, weights, base, architecture)
    mask = g.op(
        "Mul",
        g.op(
            "Sub",
            g.tensor("one.f", 1.0),
            g.op("Cast", _unsqueezed(g, "attention_mask"), to=TensorProto.FLOAT),
        ),
        g.tensor("masked", MASKED),
    )
    for layer in range(layers):
        hidden = _encoder_layer(g, hidden, mask, weights, f"{base}.encoder.layer.{layer}", heads)
    first = g.op("Gather", hidden, g.tensor("first_token", np.array(0, dtype=np.int64)), axis=1)
    if architecture == "bert":
        pooled = g.op("Tanh", _gemm(g, first, weights, "bert.pooler.dense"))
        logits = _gemm(g, pooled, weights, "classifier")
    else:
        logits = _gemm(
            g, g.op("Tanh", _gemm(g, first, weights, "classifier.dense")), weights, "classifier.out_proj"
        )
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="/logits"))
    names = ["input_ids", "attention_mask", *(["token_type_ids"] if architecture == "bert" else [])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in names]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])
    graph = helper.make_graph(g.nodes, f"{architecture}-cross-encoder", inputs, [output], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    # ONNX Runtime's optimizer picks its BERT fusions by producer and warns on any other name; this
    # graph is laid out as the PyTorch exporter writes one, so it says so.
    model.producer_name = "pytorch"
    model.doc_string = "built by reranker-server make-test-model from seeded weights (no torch involved)"
    onnx.checker.check_model(model, full_check=True)
    return model


def _unsqueezed(g: GraphBuilder, mask: str) -> str:
    """[batch, sequence] -> [batch, 1, 1, sequence], two Unsqueezes as torch writes them."""
    once = g.op("Unsqueeze", mask, g.tensor("axis1", np.array([1], dtype=np.int64)))
    return g.op("Unsqueeze", once, g.tensor("axis2", np.array([2], dtype=np.int64)))


def _embeddings(g: GraphBuilder, weights: Weights, base: str, architecture: Architecture) -> str:
    prefix = f"{base}.embeddings"
    words = g.op(
        "Gather",
        g.tensor(f"{prefix}.word_embeddings.weight", weights[f"{prefix}.word_embeddings.weight"]),
        "input_ids",
    )
    table = weights[f"{prefix}.position_embeddings.weight"]
    types_table = weights[f"{prefix}.token_type_embeddings.weight"]
    if architecture == "bert":
        types = g.op(
            "Gather", g.tensor(f"{prefix}.token_type_embeddings.weight", types_table), "token_type_ids"
        )
        # Shape -> Gather(1) -> Unsqueeze -> Slice, as torch writes it: the pattern ONNX Runtime's
        # EmbedLayerNormalization fusion looks for.
        all_positions = g.tensor("position_ids", np.arange(table.shape[0], dtype=np.int64)[None, :])
        length = g.op(
            "Gather", g.op("Shape", "input_ids"), g.tensor("one.i", np.array(1, dtype=np.int64)), axis=0
        )
        end = g.op("Unsqueeze", length, g.tensor("axis0", np.array([0], dtype=np.int64)))
        zero, one = (
            g.tensor("zero", np.array([0], dtype=np.int64)),
            g.tensor("one", np.array([1], dtype=np.int64)),
        )
        positions = g.op("Slice", all_positions, zero, end, one, one)
    else:
        # transformers' create_position_ids_from_input_ids; one token type, added everywhere.
        types = g.tensor(f"{prefix}.token_type_embeddings.row0", types_table[0])
        pad = g.tensor("pad_id", np.array(XLMR_PAD_ID, dtype=np.int64))
        real = g.op("Cast", g.op("Not", g.op("Equal", "input_ids", pad)), to=TensorProto.INT64)
        cumulative = g.op("CumSum", real, g.tensor("sequence_axis", np.array(1, dtype=np.int64)))
        positions = g.op("Add", g.op("Mul", cumulative, real), pad)
    position_vectors = g.op("Gather", g.tensor(f"{prefix}.position_embeddings.weight", table), positions)
    return _layer_norm(
        g, g.op("Add", g.op("Add", words, types), position_vectors), weights, f"{prefix}.LayerNorm"
    )


def _encoder_layer(g: GraphBuilder, x: str, mask: str, weights: Weights, prefix: str, heads: int) -> str:
    hidden = weights[f"{prefix}.attention.self.query.weight"].shape[0]
    head_size = hidden // heads
    split = g.tensor(f"{prefix}.split_heads", np.array([0, 0, heads, head_size], dtype=np.int64))

    def projected(name: str, perm: list[int]) -> str:
        heads_first = g.op("Reshape", _linear(g, x, weights, f"{prefix}.attention.self.{name}"), split)
        return g.op("Transpose", heads_first, perm=perm)

    with g.module(f"{prefix}.attention.self"):
        query, key_t, value = (
            projected("query", [0, 2, 1, 3]),
            projected("key", [0, 2, 3, 1]),
            projected("value", [0, 2, 1, 3]),
        )
        scale = g.tensor(f"{prefix}.scale", math.sqrt(head_size))
        probabilities = g.op(
            "Softmax", g.op("Add", g.op("Div", g.op("MatMul", query, key_t), scale), mask), axis=-1
        )
        context = g.op("Transpose", g.op("MatMul", probabilities, value), perm=[0, 2, 1, 3])
        merge = g.tensor(f"{prefix}.merge_heads", np.array([0, 0, hidden], dtype=np.int64))
        merged = g.op("Reshape", context, merge)
    attended = _layer_norm(
        g,
        g.op("Add", _linear(g, merged, weights, f"{prefix}.attention.output.dense"), x),
        weights,
        f"{prefix}.attention.output.LayerNorm",
    )
    inner = _linear(g, attended, weights, f"{prefix}.intermediate.dense")
    with g.module(f"{prefix}.intermediate.intermediate_act_fn"):
        erf = g.op("Erf", g.op("Div", inner, g.tensor(f"{prefix}.sqrt2", math.sqrt(2.0))))
        one, half = g.tensor(f"{prefix}.one", 1.0), g.tensor(f"{prefix}.half", 0.5)
        gelu = g.op("Mul", g.op("Mul", inner, g.op("Add", erf, one)), half)
    out = g.op("Add", _linear(g, gelu, weights, f"{prefix}.output.dense"), attended)
    return _layer_norm(g, out, weights, f"{prefix}.output.LayerNorm")


def _linear(g: GraphBuilder, x: str, weights: Weights, prefix: str) -> str:
    """nn.Linear on a 3-D input as torch exports it: MatMul by W^T, then Add(bias, product)."""
    weight = g.tensor(f"{prefix}.weight.T", np.ascontiguousarray(weights[f"{prefix}.weight"].T))
    with g.module(prefix):
        return g.op("Add", g.tensor(f"{prefix}.bias", weights[f"{prefix}.bias"]), g.op("MatMul", x, weight))


def _gemm(g: GraphBuilder, x: str, weights: Weights, prefix: str) -> str:
    """nn.Linear on a 2-D input: one Gemm with the weight as stored (out x in)."""
    weight = g.tensor(f"{prefix}.weight", weights[f"{prefix}.weight"])
    with g.module(prefix):
        return g.op("Gemm", x, weight, g.tensor(f"{prefix}.bias", weights[f"{prefix}.bias"]), transB=1)


def _layer_norm(g: GraphBuilder, x: str, weights: Weights, prefix: str) -> str:
    gamma = g.tensor(f"{prefix}.weight", weights[f"{prefix}.weight"])
    beta = g.tensor(f"{prefix}.bias", weights[f"{prefix}.bias"])
    with g.module(prefix):
        return g.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=LAYER_NORM_EPS)
