"""Which int8 weight type this CPU multiplies exactly: signed on VNNI, unsigned on older x86.

ONNX Runtime multiplies u8 activations by int8 weights. With VNNI (VPDPBUSD: AVX-512 VNNI, AVX-VNNI,
AMX) every product is summed into int32. Without it, on AVX2 and AVX-512 cores before VNNI (AMD
Zen 2 and Zen 3, Intel Skylake-SP), the kernels use VPMADDUBSW, which adds two products into a
saturating int16: 2 x 255 x 127 overflows it, so large activations are clipped. Measured on a
Zen 3 (AVX2) with the fine-tuned MiniLM at k=100 x 256, signed weights moved int8's per-query
Spearman vs fp32 from 0.992 to 0.988 and doubled its largest logit error (0.65 -> 1.25). Unsigned
weights take ONNX Runtime's u8 x u8 kernels, which widen to int16 before multiplying and never
saturate: 0.992 and 0.65 again, as on VNNI with signed weights, at 0.85x the signed weights' speed
(still 1.25x fp32). On ARM, the dot-product kernels sum into int32 as VNNI does.

So each CPU quantises with the weight type it multiplies exactly, and the choice is part of the
int8 cache key. A graph quantised elsewhere (a prepared artefact) is checked on load: signed
weights on a saturating CPU get a warning that names the fix.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Final, Literal

Int8Weights = Literal["s8", "u8"]

#: CPU flags (Linux /proc/cpuinfo names) of the instructions that sum u8 x s8 products into int32.
VNNI_FLAGS: Final = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
X86_MACHINES: Final = frozenset({"x86_64", "amd64", "i386", "i686"})
CPUINFO: Final = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str) -> frozenset[str] | None:
    """The first processor's flags from /proc/cpuinfo text; None when it lists none."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return None


def saturates_signed_weights(machine: str, flags: frozenset[str] | None) -> bool:
    """Whether ONNX Runtime's u8 x s8 kernels clip sums on this CPU. An x86 CPU whose flags cannot
    be read counts as saturating: unsigned weights are exact everywhere, signed ones are not."""
    if machine.lower() not in X86_MACHINES:
        return False
    return flags is None or not (flags & VNNI_FLAGS)


def weights_for(machine: str, flags: frozenset[str] | None) -> Int8Weights:
    return "u8" if saturates_signed_weights(machine, flags) else "s8"


def this_cpu() -> tuple[str, frozenset[str] | None]:
    """This machine's architecture and CPU flags (None off Linux, where /proc/cpuinfo is absent)."""
    try:
        flags = cpu_flags(CPUINFO.read_text())
    except OSError:
        flags = None
    return platform.machine(), flags


def weights_for_this_cpu() -> Int8Weights:
    return weights_for(*this_cpu())


def graph_weights(graph: Path) -> Int8Weights | None:
    """The weight type of a quantised graph's int8 matrix products; None for a graph without any."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    initializers = {tensor.name: tensor.data_type for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in {"DynamicQuantizeMatMul", "MatMulInteger", "QAttention"}:
            weight_type = initializers.get(node.input[1])
            if weight_type == onnx.TensorProto.INT8:
                return "s8"
            if weight_type == onnx.TensorProto.UINT8:
                return "u8"
    return None


def saturation_warning(graph: Path) -> str | None:
    """What to tell an operator serving signed int8 weights on a CPU that clips them; None if fine."""
    machine, flags = this_cpu()
    if not saturates_signed_weights(machine, flags) or graph_weights(graph) != "s8":
        return None
    return (
        f"{graph} holds signed int8 weights, which this CPU (no VNNI) multiplies with saturating int16 "
        "sums: scores drift from fp32 (measured on the fine-tuned MiniLM: largest logit error 0.65 -> "
        "1.25). It was quantised on a CPU with VNNI; prepare int8 on this node's CPU type, or serve "
        "quantization none"
    )
