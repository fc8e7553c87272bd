"""What machine the numbers came from, and its fp32 peak.

Peak = physical cores x clock x fp32 FLOPs per cycle of the widest FMA units. FLOPs per cycle
are not in lscpu, so they come from the microarchitecture (vendor, family, ISA flags) with the
reasoning recorded next to the number.
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
    memory_gib: float

    def peak_gflops(self, threads: int) -> float:
        """fp32 peak of `threads` threads, each on its own physical core (SMT siblings share FMA units)."""
        return min(threads, self.cores) * self.clock_mhz / 1000.0 * self.fma.flops_per_cycle

    def to_json(self, threads: int) -> dict[str, Any]:
        data = asdict(self)
        data["flags"] = sorted(flag for flag in self.flags if flag.startswith(("avx", "fma", "amx")))
        data["threads_used"] = threads
        data["fp32_peak_gflops"] = round(self.peak_gflops(threads), 1)
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
    result = subprocess.run(
        [sys.executable, "-c", SGEMM_PROBE, str(threads)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": str(threads)},
    )
    return round(float(result.stdout.strip().splitlines()[-1]), 1)
