"""Dynamic int8 quantisation of an fp32 ONNX graph for CPU serving, smoothed first.

Weights become int8 once, activations are quantised per call: the result does not depend on the
traffic. This is the CPU's big lever (about 2x over fp32 on VNNI/AVX-512 hardware); it needs the
`onnx` package but never torch. The weights are signed or unsigned int8, whichever this CPU
multiplies without saturating (reranker_server.int8weights). Before quantising, outlier
activation channels are smoothed into the weights (see smoothing.py), calibrated on a few dozen
pairs of plain English built here, so no user data and no dataset download are needed.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

import numpy as np

from reranker_server.int8weights import Int8Weights
from reranker_server.preparation.export import EXTERNAL_DATA_THRESHOLD_BYTES
from reranker_server.preparation.smoothing import (
    CALIBRATION_BATCH,
    channel_maxima,
    probe_runner,
    smooth,
    smoothable_nodes,
)
from reranker_server.samples import WARMUP_QUERY, WORDS

log = logging.getLogger(__name__)

#: Names the recipe in the int8 cache key: a changed recipe must not reuse graphs built by an older one.
RECIPE: Final = "smoothquant-a0.5-v1"
#: Only matrix products become int8. Quantising the embedding tables too (ONNX Runtime's default)
#: saves their memory but raised the largest logit error on the fine-tuned MiniLM by 40 % (0.73 -> 1.02).
QUANTIZED_OPS: Final = ["MatMul", "Attention"]
CALIBRATION_PAIRS: Final = 32
#: Longest calibration passage, in words: the cached graph serves every max_length, so it is fixed.
CALIBRATION_MAX_LENGTH: Final = 256
CALIBRATION_SEED: Final = 7


def recipe_key(weights: Int8Weights) -> str:
    """The int8 cache key's salt: the recipe and the weight type it was quantised with."""
    return f"{RECIPE}-{weights}"


def calibration_pairs(max_length: int) -> list[tuple[str, str]]:
    """Query/passage pairs from common English words, passages from a dozen words to max_length."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    lengths = np.linspace(12, max_length, CALIBRATION_PAIRS).astype(int)
    return [(WARMUP_QUERY, " ".join(rng.choice(WORDS, size=int(length)))) for length in lengths]


def calibration_batches(
    tokenizer: Path, max_length: int, input_types: Mapping[str, type]
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Padded feeds for the calibration pairs, a few pairs per batch, with their attention masks."""
    from tokenizers import Tokenizer

    encoder = Tokenizer.from_file(str(tokenizer))
    encoder.no_padding()
    encoder.enable_truncation(max_length, strategy="longest_first")
    encodings = encoder.encode_batch(calibration_pairs(max_length))
    for start in range(0, len(encodings), CALIBRATION_BATCH):
        batch = encodings[start : start + CALIBRATION_BATCH]
        width = max(len(e.ids) for e in batch)
        ids, types, mask = (np.zeros((len(batch), width), dtype=np.int64) for _ in range(3))
        for row, encoding in enumerate(batch):
            ids[row, : len(encoding.ids)] = encoding.ids
            types[row, : len(encoding.ids)] = encoding.type_ids
            mask[row, : len(encoding.ids)] = 1
        arrays = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        feeds = {
            name: array.astype(input_types[name]) for name, array in arrays.items() if name in input_types
        }
        yield feeds, mask


def quantize_int8(
    source: Path,
    destination: Path,
    *,
    tokenizer: Path,
    max_length: int,
    weights: Int8Weights,
    external_data_threshold_bytes: int = EXTERNAL_DATA_THRESHOLD_BYTES,
) -> None:
    """Write a smoothed, dynamically quantised copy of `source` to `destination` (not existing yet).

    Per-channel weight scales (one per output column) give a lower score error than per-tensor
    ones at the same speed. Tensors whose type shape inference cannot tell default to float, which
    is what a cross-encoder's activations are (without it, graphs exported by torch fail to quantise).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weights_bytes = sum(p.stat().st_size for p in source.parent.iterdir() if p.name.startswith(source.name))
    model = onnx.load(str(source))
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".smoothing-") as scratch:
        smoothed = Path(scratch) / "smoothed.onnx"
        activations = [node.input[0] for node in smoothable_nodes(model.graph)]
        if activations:
            input_types = {
                i.name: np.int32 if i.type.tensor_type.elem_type == onnx.TensorProto.INT32 else np.int64
                for i in model.graph.input
            }
            maxima = channel_maxima(
                activations,
                calibration_batches(tokenizer, max_length, input_types),
                probe_runner(model, activations, Path(scratch)),
            )
            log.info("smoothed %d matrix products before int8", smooth(model, maxima))
        onnx.save(model, str(smoothed), save_as_external_data=True, location="smoothed.onnx.data")
        with _without_preprocessing_advice():
            quantize_dynamic(
                model_input=smoothed,
                model_output=destination,
                op_types_to_quantize=QUANTIZED_OPS,
                weight_type=QuantType.QInt8 if weights == "s8" else QuantType.QUInt8,
                per_channel=True,
                use_external_data_format=weights_bytes > external_data_threshold_bytes,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )


class _PreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing")


@contextlib.contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """quantize_dynamic advises its pre-processing on every graph not marked as pre-processed. What it
    would add here is shape inference for tensor types, which DefaultTensorType already answers, and an
    ONNX Runtime optimisation the fused graph has had: one warning per preparation that asks for nothing."""
    root = logging.getLogger()
    advice = _PreprocessingAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)
