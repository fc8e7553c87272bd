"""How many CPUs this process may really use.

ONNX Runtime sizes its intra-op pool to the host's cores. In a pod limited to 2 CPUs on a 64-core
node that means 64 spinning threads sharing 2 CPUs of quota: throttling, and latency far worse
than with 2 threads. The quota lives in the cgroup, so read it there.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Final

CGROUP_V2_CPU_MAX: Final = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA: Final = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD: Final = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def quota_from_cpu_max(text: str) -> float | None:
    """Parse cgroup v2 `cpu.max` ("200000 100000" or "max 100000") into CPUs, None when unlimited."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    quota, period = int(parts[0]), int(parts[1])
    return quota / period if quota > 0 and period > 0 else None


def quota_from_cfs(quota_text: str, period_text: str) -> float | None:
    """Parse cgroup v1 CFS quota/period into CPUs, None when unlimited (quota -1)."""
    quota, period = int(quota_text.strip()), int(period_text.strip())
    return quota / period if quota > 0 and period > 0 else None


def threads_for(quota: float | None, available: int) -> int:
    """Threads to use: the quota rounded up, never more than the CPUs we may run on, at least 1."""
    if quota is None:
        return max(1, available)
    return max(1, min(available, math.ceil(quota)))


def read_quota() -> float | None:
    """The container's CPU quota in CPUs from cgroup v2 or v1; None when there is none."""
    try:
        if CGROUP_V2_CPU_MAX.exists():
            return quota_from_cpu_max(CGROUP_V2_CPU_MAX.read_text())
        if CGROUP_V1_QUOTA.exists() and CGROUP_V1_PERIOD.exists():
            return quota_from_cfs(CGROUP_V1_QUOTA.read_text(), CGROUP_V1_PERIOD.read_text())
    except (OSError, ValueError):
        return None
    return None


def container_cpus() -> int:
    """CPUs available to this container: cgroup quota, bounded by the CPUs we are scheduled on."""
    return threads_for(read_quota(), len(os.sched_getaffinity(0)))
