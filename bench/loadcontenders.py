"""How each load-sweep contender is started on loopback, with the same core budget, and when it is idle.

- Our server (fp32, int8): `reranker-server serve` as bench.launch starts it, except that the
  latency SLO is the workload's and the request deadline is left to the server (4 SLOs), as the
  operator configures a pod; 2 intra-op threads.
- The recipes: `uvicorn --factory ... --workers 2`, each worker with 1 torch / ONNX Runtime /
  tokenizer thread, so the two workers together use the 2 cores.

Everything runs on the same cores as the load generator; none is pinned, as none would be in a pod.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import psutil

from bench.config import BenchConfig, Block, Point
from bench.guard import MemoryGuard
from bench.launch import BIN, base_env, export_for_server, free_port, server_env
from bench.loadconfig import LoadConfig, LoadContender, LoadWorkload
from bench.prepare import model_dir, optimum_dir
from bench.procs import ServerProcess
from bench.recipes.app import RecipeSettings

RECIPE_APPS: Final = {
    "st-fastapi": "bench.recipes.seed:create_app",
    "optimum-fastapi": "bench.recipes.optimum_ort:create_app",
}
QUANTIZE: Final = {"ours-fp32": "none", "ours-int8": "int8", "ours-int8-strict": "int8"}
#: Contenders whose request deadline is the SLO itself rather than the default 4 x SLO.
STRICT: Final = frozenset({"ours-int8-strict"})


def server_block(config: LoadConfig, workload: LoadWorkload) -> tuple[BenchConfig, Block]:
    """The latency bench's config and block for this workload, so our server starts as it does there."""
    block = Block(
        model=config.model,
        max_length=workload.max_length,
        contenders=("C", "D"),
        points=(Point(workload.kind, workload.k, 1),),
        first_request=(workload.kind, workload.k),
    )
    bench = BenchConfig(blocks=(block,), threads=config.threads, seed=config.seed, build_dir=config.build_dir)
    return bench, block


def export_servers(config: LoadConfig, log_dir: Path) -> dict[str, Any]:
    """`reranker-server export` for each of our contenders, so start-up loads a warm cache."""
    bench, block = server_block(config, config.workloads[0])
    return {
        key: export_for_server(bench, block, quantize, log_dir / f"load-export-{quantize}.log")
        for key, quantize in QUANTIZE.items()
        if key in config.contenders
    }


class RecipeProcess(ServerProcess):
    """uvicorn with N workers: ready once every worker has answered /ready (they load in parallel)."""

    def __init__(
        self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path, port: int, workers: int
    ) -> None:
        super().__init__(name, argv, env, log_path, port)
        self.workers = workers

    def start(self, guard: MemoryGuard, cap_bytes: int, timeout_s: float = 600.0) -> None:
        spawned = time.perf_counter()
        super().start(guard, cap_bytes, timeout_s)
        deadline = spawned + timeout_s
        seen: set[int] = set()
        # A fresh connection per probe: the kernel hands each to whichever worker accepts first.
        while len(seen) < self.workers:
            if time.perf_counter() > deadline:
                raise self.failure(f"only {len(seen)} of {self.workers} workers ready in {timeout_s:.0f} s")
            if self.process is not None and self.process.poll() is not None:
                raise self.failure("exited before every worker was ready")
            with contextlib.suppress(httpx.TransportError):
                seen.add(httpx.get(f"{self.base_url}/ready", timeout=2.0).json()["pid"])
            time.sleep(0.02)
        self.cold_start_s = time.perf_counter() - spawned


@dataclass(frozen=True)
class Launch:
    process: ServerProcess
    #: Requests it scores at once when each takes a whole worker: the ladder's start scales by it.
    parallelism: int


def make_contender(config: LoadConfig, workload: LoadWorkload, key: LoadContender) -> Launch:
    logs = config.build_dir / "logs"
    tag = f"load-{workload.name}-{key}"
    port = free_port()
    if key in QUANTIZE:
        bench, block = server_block(config, workload)
        env = server_env(bench, block, QUANTIZE[key], port)
        env["RERANKER_LATENCY_SLO_MS"] = str(workload.slo_ms)
        # 0: derived from the SLO (4 x), as in a pod by default; strict: the SLO itself.
        env["RERANKER_REQUEST_TIMEOUT_MS"] = str(workload.slo_ms) if key in STRICT else "0"
        argv = [str(BIN / "reranker-server"), "serve"]
        return Launch(ServerProcess(key, argv, env, logs / f"{tag}.log", port), parallelism=1)
    workers = config.recipe_workers
    per_worker = max(1, config.threads // workers)
    source = model_dir if key == "st-fastapi" else optimum_dir
    settings = RecipeSettings(
        model=str(source(config.build_dir, config.model)),
        max_length=workload.max_length,
        threads=per_worker,
    )
    env = base_env(per_worker) | settings.to_env()
    argv = [
        str(BIN / "uvicorn"),
        "--factory",
        RECIPE_APPS[key],
        "--workers",
        str(workers),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return Launch(RecipeProcess(key, argv, env, logs / f"{tag}.log", port, workers), parallelism=workers)


def tree_pids(pid: int) -> list[int]:
    """A process and its live children: what the noise accounting counts as ours."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and its live children (uvicorn's workers)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def wait_idle(pid: int, max_cores: float, timeout_s: float, window_s: float = 0.5) -> dict[str, Any]:
    """Wait (bounded) until the contender's tree uses under `max_cores` over a window; say how it went.

    A recipe keeps scoring the requests whose callers timed out: that backlog must drain before
    the next step, or it would be charged to the next rate.
    """
    started = time.monotonic()
    while True:
        before = tree_cpu_s(pid)
        time.sleep(window_s)
        cores = (tree_cpu_s(pid) - before) / window_s
        waited = time.monotonic() - started
        if cores <= max_cores or waited >= timeout_s:
            return {"waited_s": round(waited, 2), "cores": round(cores, 3), "idle": cores <= max_cores}
