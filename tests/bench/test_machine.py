"""The CPU's fp32 peak from lscpu: cores x clock x FLOPs per cycle of its FMA units."""

import pytest

from bench.machine import fma_basis, machine_from

ZEN4_VM_LSCPU = """Architecture:                            x86_64
CPU(s):                                  2
Vendor ID:                               AuthenticAMD
Model name:                              AMD EPYC
CPU family:                              25
Model:                                   17
Thread(s) per core:                      1
Core(s) per socket:                      2
Socket(s):                               1
BogoMIPS:                                5192.28
Flags:                                   fpu sse sse2 avx fma avx2 avx512f avx512_vnni
"""
CPUINFO = "processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2596.142\n"


def test_zen4_vm_peak_uses_the_hypervisor_clock_and_two_256_bit_fma_pipes() -> None:
    machine = machine_from(ZEN4_VM_LSCPU, CPUINFO, 24 * 2**30)
    assert machine.cores == 2
    assert machine.fma.flops_per_cycle == 32
    assert machine.peak_gflops(threads=2) == pytest.approx(2 * 2.596142 * 32)


def test_peak_counts_only_the_threads_used() -> None:
    machine = machine_from(ZEN4_VM_LSCPU, CPUINFO, 24 * 2**30)
    assert machine.peak_gflops(threads=1) == pytest.approx(machine.peak_gflops(threads=2) / 2)


def test_smt_siblings_do_not_add_peak() -> None:
    smt = ZEN4_VM_LSCPU.replace("CPU(s):                                  2", "CPU(s): 4").replace(
        "Core(s) per socket:                      2", "Core(s) per socket: 2"
    )
    machine = machine_from(smt, CPUINFO, 2**30)
    assert machine.peak_gflops(threads=4) == machine.peak_gflops(threads=2)


def test_lscpu_max_clock_wins_over_cpuinfo() -> None:
    machine = machine_from(ZEN4_VM_LSCPU + "CPU max MHz: 3700.0\n", CPUINFO, 2**30)
    assert machine.clock_mhz == 3700.0


@pytest.mark.parametrize(
    ("vendor", "family", "model", "flags", "expected"),
    [
        ("AuthenticAMD", 0x1A, 0, {"avx512f"}, 64),
        ("AuthenticAMD", 0x17, 0x31, {"avx2", "fma"}, 32),
        ("AuthenticAMD", 0x17, 0x01, {"avx2", "fma"}, 16),
        ("GenuineIntel", 6, 143, {"avx512f", "avx2", "fma"}, 64),
        ("GenuineIntel", 6, 60, {"avx2", "fma"}, 32),
    ],
)
def test_flops_per_cycle_by_microarchitecture(
    vendor: str, family: int, model: int, flags: set[str], expected: int
) -> None:
    assert fma_basis(vendor, family, model, frozenset(flags)).flops_per_cycle == expected
