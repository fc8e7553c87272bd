"""Does merging concurrent requests gain more when one request cannot fill the pod's cores?

Contender E's 16-clients-vs-one gain is bounded on 2 cores: one k=10 request already keeps both
busy, so merging only saves padding. This serves the same model with the server pinned to n cores
(`taskset`, intra-op and tokenizer threads = n) and measures 16 clients x k=10 against one client,
in interleaved rounds paired as in `make bench`; the clients run on the remaining cores where there
are any. Run it on a machine with more cores than the pod size you plan:

    python -m bench.cores --cores 2 8 14 --out bench/results/concurrency-cores.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from bench.concurrency import round_orders, run_level, summarize
from bench.config import MIN_AVAILABLE_GIB, ROOT, WORKER_MEMORY_CAP_GIB
from bench.guard import MemoryGuard
from bench.launch import BIN, base_env, free_port
from bench.procs import ServerProcess
from bench.workload import Workload, make_request, word_pool

CLIENTS = (1, 16)
ROUNDS = 3
REQUESTS = 32
K = 10
FIRST_INDEX = 30_000


def cpu_set(cores: int) -> str:
    """The CPUs the server is pinned to: the first `cores` of the machine."""
    return f"0-{cores - 1}"


def server_env(args: argparse.Namespace, cores: int, port: int) -> dict[str, str]:
    return base_env(cores) | {
        "RERANKER_MODEL": str(args.model),
        "RERANKER_CACHE_DIR": str(args.cache),
        "RERANKER_QUANTIZE": args.quantize,
        "RERANKER_HOST": "127.0.0.1",
        "RERANKER_PORT": str(port),
        "RERANKER_METRICS_PORT": "0",
        "RERANKER_MAX_LENGTH": str(args.max_length),
        "RERANKER_MAX_CANDIDATES": str(K),
        "RERANKER_INTRA_OP_THREADS": str(cores),
        "RERANKER_LATENCY_SLO_MS": "60000",
    }


def measure(
    args: argparse.Namespace, cores: int, pool: Sequence[str], guard: MemoryGuard
) -> list[dict[str, Any]]:
    port = free_port()
    argv = ["taskset", "-c", cpu_set(cores), str(BIN / "reranker-server"), "serve"]
    server = ServerProcess(
        f"server-{cores}-cores",
        argv,
        server_env(args, cores, port),
        args.log_dir / f"cores-{cores}.log",
        port,
    )
    levels = []
    try:
        server.start(guard, int(WORKER_MEMORY_CAP_GIB * 2**30), timeout_s=args.ready_timeout_s)
        workloads: tuple[Workload, ...] = ("short", "mixed")
        for workload in workloads:
            requests = [make_request(pool, workload, K, FIRST_INDEX + i) for i in range(REQUESTS)]
            run_level(server.base_url, requests, 1, args.request_timeout_s)
            runs: dict[int, list[dict[str, Any]]] = {clients: [] for clients in CLIENTS}
            for order in round_orders(CLIENTS, ROUNDS):
                for clients in order:
                    runs[clients].append(
                        run_level(server.base_url, requests, clients, args.request_timeout_s)
                    )
            level = summarize(runs[CLIENTS[-1]], runs[1]) | {"server_cores": cores, "workload": workload}
            level["one_client_pairs_per_s"] = float(np.median([run["pairs_per_s"] for run in runs[1]]))
            print(json.dumps(level), flush=True)
            levels.append(level)
    finally:
        server.stop(guard)
    return levels


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, nargs="+", required=True)
    parser.add_argument("--model", type=Path, default=ROOT / "build" / "bench" / "models" / "minilm-l6-h384")
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "bench" / "server-cache")
    parser.add_argument("--quantize", choices=["none", "int8"], default="int8")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log-dir", type=Path, default=ROOT / "build" / "bench" / "logs")
    parser.add_argument("--ready-timeout-s", type=float, default=600.0)
    parser.add_argument("--request-timeout-s", type=float, default=120.0)
    args = parser.parse_args(argv)
    if max(args.cores) > (os.cpu_count() or 1):
        parser.error(f"--cores {max(args.cores)} exceeds this machine's {os.cpu_count()} CPUs")
    args.log_dir.mkdir(parents=True, exist_ok=True)
    pool = word_pool(Tokenizer.from_file(str(args.model / "tokenizer.json")).get_vocab())
    guard = MemoryGuard(min_available_bytes=int(MIN_AVAILABLE_GIB * 2**30))
    guard.start()
    try:
        levels = [level for cores in args.cores for level in measure(args, cores, pool, guard)]
    finally:
        guard.stop()
    record = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "levels": levels}
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
