"""Offline fusion of BERT-family graphs into ONNX Runtime's fused transformer operators.

ONNX Runtime's session-level optimisation leaves attention as separate MatMul/Softmax nodes, each
with its own batch x heads x length x length buffer. Its transformers optimizer fuses them into one
Attention operator (plus SkipLayerNormalization, BiasGelu, EmbedLayerNormalization). Measured on a
MiniLM-L6 shape at 16 x 512 tokens: peak memory 1.08 GB -> 0.60 GB and ~7 % faster (fp32 and int8);
at 256 tokens ~3 % faster. Fused graphs are CPU-tuned here, so only the CPU backend uses them.

Two of its fusions are left out on the CPU: ONNX Runtime 1.23's CPU kernels for them are slower than
the plain operators they replace. SkipLayerNormalization took 1.07 ms where Add + Add +
LayerNormalization take 0.23 ms (1024 x 384 tokens, 2 threads), BiasGelu 1.05 ms where Add + Gelu
take 0.76 ms (1024 x 1536). In the int8 MiniLM-L6 at 4 x 256 tokens they were 25 % of the time;
without them a k=100 x 256 request is about 13 % faster, with the same scores (fp32 to 1e-6). The
session must not fuse them back either: see CPU_DISABLED_OPTIMIZERS in engine.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

from reranker_server.preparation.export import EXTERNAL_DATA_THRESHOLD_BYTES

log = logging.getLogger(__name__)

#: Names the CPU fusion in the fused graph's cache key: graphs fused by an older recipe are rebuilt.
RECIPE: Final = "cpu-v2: Attention, EmbedLayerNormalization; LayerNormalization and Gelu unfused"
#: The transformers optimizer's fusions that ONNX Runtime's CPU kernels run slower than unfused.
CPU_UNFUSED: Final = ("enable_skip_layer_norm", "enable_bias_skip_layer_norm", "enable_bias_gelu")

#: Architectures ONNX Runtime's "bert" fusion recognises (same encoder block, different embeddings).
FUSABLE_MODEL_TYPES: Final = frozenset(
    {"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra"}
)


def optimize_bert(source: Path, config: dict[str, Any], *, use_gpu: bool) -> Any:
    """ONNX Runtime's transformers optimizer over a BERT-family graph (its OnnxModel), for CPU or GPU."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    if not use_gpu:
        for fusion in CPU_UNFUSED:
            setattr(options, fusion, False)
    return optimize_model(
        str(source),
        model_type="bert",
        num_heads=int(config.get("num_attention_heads", 0)),
        hidden_size=int(config.get("hidden_size", 0)),
        optimization_options=options,
        opt_level=0,
        use_gpu=use_gpu,
    )


class FusionUnavailable(RuntimeError):
    """This graph cannot be fused; it is served as it is (correct, only slower and bigger)."""


def fuse_graph(
    source: Path,
    destination: Path,
    config: dict[str, Any],
    *,
    external_data_threshold_bytes: int = EXTERNAL_DATA_THRESHOLD_BYTES,
) -> None:
    """Write the fused version of `source` to `destination`, or raise FusionUnavailable."""
    model_type = config.get("model_type")
    if model_type not in FUSABLE_MODEL_TYPES:
        raise FusionUnavailable(f"no attention fusion for model_type {model_type!r}")
    optimized = optimize_bert(source, config, use_gpu=False)
    fused = optimized.get_fused_operator_statistics()
    if not fused.get("Attention") and not fused.get("MultiHeadAttention"):
        raise FusionUnavailable(f"the attention pattern of {source} was not recognised")
    weights_bytes = sum(p.stat().st_size for p in source.parent.iterdir() if p.name.startswith(source.name))
    optimized.save_model_to_file(
        str(destination), use_external_data_format=weights_bytes > external_data_threshold_bytes
    )
    log.info("fused %s: %s", source, {name: count for name, count in fused.items() if count})
