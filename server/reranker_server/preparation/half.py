"""fp16 graphs for the gpu backend: half the weight bytes and the tensor cores' rate, fp32 at the edges.

On an H200, eager PyTorch fp16 already matched our fp32 graphs on a BERT-base shape (110 vs 108 ms
for k=100 x 512): fp16 is the lever the gpu backend had left. The graph is first fused for the GPU
(ONNX Runtime's transformers optimizer with use_gpu: Attention, SkipLayerNormalization, BiasGelu,
EmbedLayerNormalization), then converted: weights and activations fp16, inputs (token ids) and the
logits output keep their types. Where fusion applies, the fused LayerNorm and attention kernels
accumulate in fp32 themselves; in a graph that could not be fused, the operators whose sums overflow
or lose precision in fp16 (LayerNormalization and Softmax) are kept in fp32, with casts around them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

from reranker_server.preparation.export import EXTERNAL_DATA_THRESHOLD_BYTES
from reranker_server.preparation.fusion import FUSABLE_MODEL_TYPES, optimize_bert

log = logging.getLogger(__name__)

#: Names how fp16 graphs are built: part of their cache key, so a changed recipe never reuses old output.
RECIPE: Final = "fp16-v1: gpu fusion, fp16 weights and activations, fp32 io; unfused LayerNorm/Softmax fp32"
#: Operators an unfused graph keeps in fp32 (a fused graph has none of them left).
FP32_OPS: Final = ("LayerNormalization", "SimplifiedLayerNormalization", "Softmax")
FUSED_ATTENTION: Final = frozenset({"Attention", "MultiHeadAttention"})


def convert_fp16(
    source: Path,
    destination: Path,
    config: dict[str, Any],
    *,
    external_data_threshold_bytes: int = EXTERNAL_DATA_THRESHOLD_BYTES,
) -> dict[str, int]:
    """Write the fp16 version of `source` to `destination`; returns the fused operators it contains."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    fused: dict[str, int] = {}
    if config.get("model_type") in FUSABLE_MODEL_TYPES:
        model = optimize_bert(source, config, use_gpu=True)
        fused = {name: count for name, count in model.get_fused_operator_statistics().items() if count}
    else:
        model = OnnxModel(onnx.load(str(source)))
    if not FUSED_ATTENTION & set(fused):
        log.info("%s: attention not fused for the GPU; %s stay fp32", source, ", ".join(FP32_OPS))
    model.convert_float_to_float16(keep_io_types=True, op_block_list=list(FP32_OPS))
    weights_bytes = sum(p.stat().st_size for p in source.parent.iterdir() if p.name.startswith(source.name))
    # fp16 halves the weights; the threshold compares what will be written.
    model.save_model_to_file(
        str(destination), use_external_data_format=weights_bytes // 2 > external_data_threshold_bytes
    )
    log.info("converted %s to fp16 (fused: %s)", source, fused or "nothing")
    return fused
