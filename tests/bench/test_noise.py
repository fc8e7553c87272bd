"""Other tenants' CPU use, read from /proc/stat."""

import pytest

from bench.noise import CpuSnapshot, foreign_load, parse_proc_stat


def test_busy_time_excludes_idle_and_iowait() -> None:
    busy, steal = parse_proc_stat("cpu  100 10 50 900 40 5 5 20 0 0\ncpu0 1 2 3\n", ticks_per_s=100)
    assert busy == pytest.approx(1.7)
    assert steal == pytest.approx(0.2)


def test_other_tenants_are_busy_time_not_spent_by_us() -> None:
    start = CpuSnapshot(wall=0.0, busy_s=0.0, steal_s=0.0, ours_s=0.0)
    end = CpuSnapshot(wall=10.0, busy_s=18.0, steal_s=1.0, ours_s=13.0)
    load = foreign_load(start, end)
    assert load["other_tenants_avg_cores"] == pytest.approx(0.5)
    assert load["steal_avg_cores"] == pytest.approx(0.1)
