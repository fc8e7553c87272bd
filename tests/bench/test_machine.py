"""The CPU's fp32 and int8 peaks from lscpu: cores x clock x operations per cycle of its widest units."""

import pytest

from bench.machine import fma_basis, int8_basis, machine_from

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


def test_zen4_vm_int8_peak_is_vnni_at_256_bits_per_pipe() -> None:
    machine = machine_from(ZEN4_VM_LSCPU, CPUINFO, 24 * 2**30)
    assert machine.int8.ops_per_cycle == 128
    assert machine.int8_peak_gops(threads=2) == pytest.approx(2 * 2.596142 * 128)
    assert machine.to_json(threads=2)["int8_peak_gops"] == pytest.approx(664.6, abs=0.1)


@pytest.mark.parametrize(
    ("vendor", "family", "flags", "expected"),
    [
        ("GenuineIntel", 6, {"avx512f", "avx512_vnni", "amx_int8"}, 2048),
        ("GenuineIntel", 6, {"avx512f", "avx512_vnni"}, 256),
        ("AuthenticAMD", 0x1A, {"avx512f", "avx512_vnni"}, 256),
        ("GenuineIntel", 6, {"avx2", "avx_vnni"}, 128),
        ("AuthenticAMD", 0x17, {"avx2", "fma"}, 128),
        ("GenuineIntel", 6, {"sse4_1"}, 32),
    ],
)
def test_int8_operations_per_cycle_by_instruction_set(
    vendor: str, family: int, flags: set[str], expected: int
) -> None:
    assert int8_basis(vendor, family, frozenset(flags)).ops_per_cycle == expected
