"""Keeps the benchmark from taking the (shared) machine down with it.

The one-call recipe (B) allocates attention tensors for every pair at once and ONNX Runtime's
arena keeps them, so it grows to many GB at k=100, L=512. The guard samples every contender
process tree; one that passes its cap, or a machine running out of memory, gets that process
killed and the kill recorded as the result, instead of the kernel's OOM killer picking a victim.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Final

import psutil

#: How often the guard samples. Each sample holds the benchmark process's GIL and costs CPU on a
#: 2-core machine: at 50 ms it used a tenth of a core and slowed the HTTP client of a one-client
#: run by a third (38 -> 57 ms per k=10 request). Peaks come from the kernel's high-water mark
#: (VmHWM), not from sampling, and the fastest grower (B) gains well under 1 GB per second.
SAMPLE_INTERVAL_S: Final = 0.25


@dataclass
class Watched:
    name: str
    process: psutil.Process
    cap_bytes: int
    peak_bytes: int = 0
    killed_reason: str | None = None


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and its children (a server may fork helpers)."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total


@dataclass
class MemoryGuard:
    min_available_bytes: int
    interval_s: float = SAMPLE_INTERVAL_S
    watched: dict[int, Watched] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="memory-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def watch(self, name: str, pid: int, cap_bytes: int) -> Watched:
        entry = Watched(name=name, process=psutil.Process(pid), cap_bytes=cap_bytes)
        with self._lock:
            self.watched[pid] = entry
        return entry

    def forget(self, pid: int) -> None:
        with self._lock:
            self.watched.pop(pid, None)

    def _kill(self, entry: Watched, reason: str) -> None:
        entry.killed_reason = reason
        try:
            for child in entry.process.children(recursive=True):
                child.kill()
            entry.process.kill()
        except psutil.Error:
            return

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                entries = [e for e in self.watched.values() if e.killed_reason is None]
            sizes: list[tuple[int, Watched]] = []
            for entry in entries:
                try:
                    rss = tree_rss(entry.process)
                except psutil.Error:
                    continue
                entry.peak_bytes = max(entry.peak_bytes, rss)
                sizes.append((rss, entry))
                if rss > entry.cap_bytes:
                    self._kill(
                        entry,
                        f"memory guard: RSS {rss / 2**30:.1f} GiB passed the cap "
                        f"{entry.cap_bytes / 2**30:.1f} GiB",
                    )
            available = psutil.virtual_memory().available
            if sizes and available < self.min_available_bytes:
                rss, biggest = max(sizes, key=lambda item: item[0])
                if biggest.killed_reason is None:
                    self._kill(
                        biggest,
                        f"memory guard: machine had {available / 2**30:.1f} GiB available; "
                        f"killed the biggest contender at {rss / 2**30:.1f} GiB",
                    )
