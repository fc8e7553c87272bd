"""Offline fusion of BERT-family graphs into ONNX Runtime's fused transformer operators.

ONNX Runtime's session-level optimisation leaves attention as separate MatMul/Softmax nodes, each
with its own batch x heads x length x length buffer. Its transformers optimizer fuses them into one
Attention operator (plus SkipLayerNormalization, BiasGelu, EmbedLayerNormalization). Measured on a
MiniLM-L6 shape at 16 x 512 tokens: peak memory 1.08 GB -> 0.60 GB and ~7 % faster (fp32 and int8);
at 256 tokens ~3 % faster. Fused graphs are CPU-tuned here, so only the CPU backend uses them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

from reranker_server.preparation.export import EXTERNAL_DATA_THRESHOLD_BYTES

log = logging.getLogger(__name__)

#: Architectures ONNX Runtime's "bert" fusion recognises (same encoder block, different embeddings).
FUSABLE_MODEL_TYPES: Final = frozenset(
    {"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra"}
)


def optimize_bert(source: Path, config: dict[str, Any], *, use_gpu: bool) -> Any:
    """ONNX Runtime's transformers optimizer over a BERT-family graph (its OnnxModel), for CPU or GPU."""
    from onnxruntime.transformers.optimizer import optimize_model

    return optimize_model(
        str(source),
        model_type="bert",
        num_heads=int(config.get("num_attention_heads", 0)),
        hidden_size=int(config.get("hidden_size", 0)),
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
