"""How busy the machine was with work that was not ours while we timed (it is shared).

/proc/stat counts every CPU's busy time; os.times() counts this process and its reaped children
(every contender is our child). The difference is other tenants' work; steal is time the
hypervisor gave to other VMs. Both are reported next to the numbers they disturbed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil


@dataclass(frozen=True)
class CpuSnapshot:
    wall: float
    busy_s: float
    steal_s: float
    ours_s: float


def parse_proc_stat(text: str, ticks_per_s: float) -> tuple[float, float]:
    """(busy, steal) seconds summed over CPUs from the aggregate `cpu` line: busy excludes idle and iowait."""
    fields = [int(v) for v in text.splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / ticks_per_s, steal / ticks_per_s


def _live_cpu_s(pids: Iterable[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def snapshot(live_pids: Iterable[int] = ()) -> CpuSnapshot:
    """CPU counters now; `live_pids` are running contenders (os.times only counts reaped children)."""
    busy, steal = parse_proc_stat(Path("/proc/stat").read_text(), os.sysconf("SC_CLK_TCK"))
    times = os.times()
    ours = times.user + times.system + times.children_user + times.children_system + _live_cpu_s(live_pids)
    return CpuSnapshot(wall=time.monotonic(), busy_s=busy, steal_s=steal, ours_s=ours)


def foreign_load(start: CpuSnapshot, end: CpuSnapshot) -> dict[str, Any]:
    wall = end.wall - start.wall
    busy = end.busy_s - start.busy_s
    ours = end.ours_s - start.ours_s
    return {
        "wall_s": round(wall, 1),
        "our_cpu_s": round(ours, 1),
        "other_tenants_cpu_s": round(max(0.0, busy - ours), 1),
        "other_tenants_avg_cores": round(max(0.0, busy - ours) / wall, 3) if wall > 0 else 0.0,
        "steal_avg_cores": round((end.steal_s - start.steal_s) / wall, 3) if wall > 0 else 0.0,
    }


def wait_for_quiet(max_other_cores: float, window_s: float, timeout_s: float) -> dict[str, Any]:
    """Wait (bounded) until other tenants use less than `max_other_cores` over a window; say how it went."""
    started = time.monotonic()
    while True:
        before = snapshot()
        time.sleep(window_s)
        load = foreign_load(before, snapshot())["other_tenants_avg_cores"]
        waited = time.monotonic() - started
        if load <= max_other_cores or waited >= timeout_s:
            return {
                "waited_s": round(waited, 1),
                "other_tenants_avg_cores": load,
                "quiet": load <= max_other_cores,
            }
