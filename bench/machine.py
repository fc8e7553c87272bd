"""What machine the numbers came from, and its fp32 and int8 peaks.

Peak = physical cores x clock x operations per cycle of the widest units: fp32 FMA pipes, and
for int8 the u8 x s8 dot-product instructions ONNX Runtime's int8 kernels use (VNNI's VPDPBUSD,
else VPMADDUBSW). Operations per cycle are not in lscpu, so they come from the microarchitecture
(vendor, family, ISA flags) with the reasoning recorded next to the number; a measured GEMM of
each kind stands beside the nominal peak as a practical roof.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final


@dataclass(frozen=True)
class FmaBasis:
    flops_per_cycle: int
    reason: str


@dataclass(frozen=True)
class Int8Basis:
    ops_per_cycle: int
    reason: str


@dataclass(frozen=True)
class Machine:
    model_name: str
    vendor: str
    family: int
    model: int
    cores: int
    logical_cpus: int
    clock_mhz: float
    clock_source: str
    flags: frozenset[str]
    fma: FmaBasis
    int8: Int8Basis
    memory_gib: float

    def peak_gflops(self, threads: int) -> float:
        """fp32 peak of `threads` threads, each on its own physical core (SMT siblings share FMA units)."""
        return min(threads, self.cores) * self.clock_mhz / 1000.0 * self.fma.flops_per_cycle

    def int8_peak_gops(self, threads: int) -> float:
        """int8 peak (multiplies and adds of u8 x s8 products, counted like FLOPs) of `threads` cores."""
        return min(threads, self.cores) * self.clock_mhz / 1000.0 * self.int8.ops_per_cycle

    def to_json(self, threads: int) -> dict[str, Any]:
        data = asdict(self)
        data["flags"] = sorted(flag for flag in self.flags if flag.startswith(("avx", "fma", "amx")))
        data["threads_used"] = threads
        data["fp32_peak_gflops"] = round(self.peak_gflops(threads), 1)
        data["int8_peak_gops"] = round(self.int8_peak_gops(threads), 1)
        return data


def parse_lscpu(text: str) -> dict[str, str]:
    """`Field: value` lines of plain `lscpu` output (the JSON form nests differently across versions)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def fma_basis(vendor: str, family: int, model: int, flags: frozenset[str]) -> FmaBasis:
    """fp32 FLOPs per cycle per core: FMA pipes x lanes x 2 (multiply + add)."""
    if vendor == "AuthenticAMD":
        if family == 0x1A:
            return FmaBasis(64, "AMD Zen 5: 2 FMA pipes x 512-bit (16 fp32 lanes) x 2")
        if family == 0x19:
            return FmaBasis(
                32, "AMD Zen 3/4: 2 FMA pipes x 256-bit (8 lanes) x 2; Zen 4 splits AVX-512 in halves"
            )
        if family == 0x17 and model >= 0x30:
            return FmaBasis(32, "AMD Zen 2: 2 FMA pipes x 256-bit (8 lanes) x 2")
        if family == 0x17:
            return FmaBasis(16, "AMD Zen 1: 2 FMA pipes x 128-bit (4 lanes) x 2")
    if "avx512f" in flags:
        return FmaBasis(
            64, "AVX-512 server core: 2 FMA pipes x 512-bit (16 lanes) x 2 (some parts have 1 pipe)"
        )
    if "fma" in flags and "avx2" in flags:
        return FmaBasis(32, "AVX2 + FMA3: 2 FMA pipes x 256-bit (8 lanes) x 2")
    return FmaBasis(8, "SSE: 4 lanes x (1 mul + 1 add)")


def int8_basis(vendor: str, family: int, flags: frozenset[str]) -> Int8Basis:
    """int8 operations per cycle per core: dot-product instructions per cycle x u8 x s8 products x 2."""
    if "amx_int8" in flags:
        return Int8Basis(2048, "AMX: one 16x64 by 64x16 int8 tile product (1024 multiply-adds) per cycle")
    if "avx512_vnni" in flags:
        if vendor == "AuthenticAMD" and family == 0x19:
            return Int8Basis(
                128, "AMD Zen 4: VNNI VPDPBUSD 2 x 256-bit per cycle (one 512-bit) x 32 u8 x s8 products x 2"
            )
        return Int8Basis(256, "AVX-512 VNNI: VPDPBUSD 2 x 512-bit per cycle x 64 u8 x s8 products x 2")
    if "avx_vnni" in flags:
        return Int8Basis(128, "AVX-VNNI: VPDPBUSD 2 x 256-bit per cycle x 32 u8 x s8 products x 2")
    if "avx2" in flags:
        return Int8Basis(
            128,
            "AVX2: VPMADDUBSW 2 x 256-bit per cycle x 32 products x 2 (accumulating to int32 costs "
            "two more instructions, so int8 kernels reach well under this)",
        )
    return Int8Basis(32, "SSE4: PMADDUBSW 128-bit, 16 products x 2")


def clock_mhz(lscpu: dict[str, str], cpuinfo: str) -> tuple[float, str]:
    """Max clock when the kernel knows it, else the clock the hypervisor reports in /proc/cpuinfo."""
    for key in ("CPU max MHz", "CPU MHz"):
        if lscpu.get(key):
            return float(lscpu[key]), f"lscpu '{key}'"
    for line in cpuinfo.splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":", 1)[1]), "/proc/cpuinfo 'cpu MHz' (lscpu shows no clock on this VM)"
    bogomips = float(lscpu.get("BogoMIPS", "0"))
    return bogomips / 2, "lscpu BogoMIPS / 2"


def machine_from(lscpu_text: str, cpuinfo: str, memory_bytes: int) -> Machine:
    fields = parse_lscpu(lscpu_text)
    flags = frozenset(fields.get("Flags", "").split())
    vendor = fields.get("Vendor ID", "unknown")
    family = int(fields.get("CPU family", "0"))
    model = int(fields.get("Model", "0"))
    logical = int(fields.get("CPU(s)", "1"))
    cores = int(fields.get("Core(s) per socket", str(logical))) * int(fields.get("Socket(s)", "1"))
    clock, source = clock_mhz(fields, cpuinfo)
    return Machine(
        model_name=fields.get("Model name", "unknown"),
        vendor=vendor,
        family=family,
        model=model,
        cores=cores,
        logical_cpus=logical,
        clock_mhz=clock,
        clock_source=source,
        flags=flags,
        fma=fma_basis(vendor, family, model, flags),
        int8=int8_basis(vendor, family, flags),
        memory_gib=round(memory_bytes / 2**30, 1),
    )


def this_machine() -> Machine:
    lscpu_text = subprocess.run(
        ["lscpu"], check=True, capture_output=True, text=True, env={"LC_ALL": "C"}
    ).stdout
    cpuinfo = Path("/proc/cpuinfo").read_text()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return machine_from(lscpu_text, cpuinfo, memory)


SGEMM_PROBE: Final = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
n = 3072
a, b = torch.rand(n, n), torch.rand(n, n)
a @ b
best = 0.0
for _ in range(8):
    started = time.perf_counter()
    a @ b
    best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
print(best)
"""


def measured_sgemm_gflops(threads: int) -> float:
    """Best of 8 fp32 3072^3 matrix products in a fresh PyTorch process with `threads` threads.

    A practical roof next to the nominal peak: a VM may report its base clock while the cores
    boost above it, and a shared machine lowers both; the best of several runs is the least
    disturbed one.
    """
    return run_probe(SGEMM_PROBE, threads)


def run_probe(probe: str, threads: int) -> float:
    """A probe's last printed number, from a fresh process with `threads` threads."""
    result = subprocess.run(
        [sys.executable, "-c", probe, str(threads)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": str(threads)},
    )
    return round(float(result.stdout.strip().splitlines()[-1]), 1)


INT8_GEMM_PROBE: Final = """
import sys, time
import numpy as np, onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
n, threads = 3072, int(sys.argv[1])
rng = np.random.default_rng(0)
weight = numpy_helper.from_array(rng.integers(-127, 128, size=(n, n), dtype=np.int8), "b")
graph = helper.make_graph(
    [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "probe",
    [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n])],
    [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])], [weight])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(
    helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
    options, providers=["CPUExecutionProvider"])
feeds = {"a": rng.integers(0, 256, size=(n, n), dtype=np.uint8)}
session.run(None, feeds)
best = 0.0
for _ in range(8):
    started = time.perf_counter()
    session.run(None, feeds)
    best = max(best, 2 * n**3 / (time.perf_counter() - started) / 1e9)
print(best)
"""


def measured_int8_gemm_gops(threads: int) -> float:
    """Best of 8 u8 x s8 3072^3 products by ONNX Runtime's own int8 GEMM (MatMulInteger), fresh process.

    The int8 counterpart of the SGEMM roof: what the kernels our int8 graphs run reach on this CPU
    when nothing else (quantising activations, layer norms, attention in fp32) is in the way.
    """
    return run_probe(INT8_GEMM_PROBE, threads)
