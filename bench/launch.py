"""How each contender process is started: same threads for all, offline, logs under build/bench/logs.

Threads: PyTorch (A) via torch.set_num_threads + OMP, ONNX Runtime (B, C, D) via intra-op
threads, and the Rust tokenizers' pool via RAYON_NUM_THREADS, all set to the same count.
Our server gets its settings the way the operator gives them to a pod: RERANKER_* env vars.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.config import BenchConfig, Block, ContenderKey
from bench.prepare import model_dir, optimum_dir
from bench.procs import ServerProcess, WorkerProcess
from bench.worker import PREFIX

BIN = Path(sys.executable).parent


def base_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "RAYON_NUM_THREADS": str(threads),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TRANSFORMERS_VERBOSITY": "error",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_cache(config: BenchConfig) -> Path:
    return config.build_dir / "server-cache"


def k_cap(config: BenchConfig, block: Block) -> int:
    """The block's largest request: warm-up runs the k cap at max_length, so no bigger than needed."""
    sizes = [point.k for point in block.points]
    if block.fidelity:
        sizes.append(config.fidelity_candidates)
    if block.concurrency:
        sizes.append(config.concurrency.k)
    return max(sizes)


def server_env(config: BenchConfig, block: Block, quantize: str, port: int) -> dict[str, str]:
    env = base_env(config.threads)
    env.update(
        {
            "RERANKER_MODEL": str(model_dir(config.build_dir, block.model)),
            "RERANKER_CACHE_DIR": str(server_cache(config)),
            "RERANKER_HOST": "127.0.0.1",
            "RERANKER_PORT": str(port),
            "RERANKER_METRICS_PORT": "0",
            "RERANKER_QUANTIZE": quantize,
            "RERANKER_MAX_LENGTH": str(block.max_length),
            "RERANKER_MAX_CANDIDATES": str(k_cap(config, block)),
            "RERANKER_MAX_BATCH_TOKENS": str(config.server_max_batch_tokens),
            "RERANKER_INTRA_OP_THREADS": str(config.threads),
            # The grid's biggest requests take seconds on 2 cores: the benchmark measures latency,
            # it must not be cut off by a production deadline derived from a 500 ms SLO.
            "RERANKER_REQUEST_TIMEOUT_MS": str(int(config.request_timeout_s * 1000)),
            "RERANKER_LATENCY_SLO_MS": str(int(config.request_timeout_s * 1000)),
        }
    )
    if config.server_warmup_requests is not None:
        env["RERANKER_WARMUP_REQUESTS"] = str(config.server_warmup_requests)
    return env


def export_for_server(config: BenchConfig, block: Block, quantize: str, log_path: Path) -> dict[str, object]:
    """`reranker-server export` ahead of serving, so cold start measures a pod with a warm cache volume."""
    env = base_env(config.threads)
    env["RERANKER_CACHE_DIR"] = str(server_cache(config))
    model = str(model_dir(config.build_dir, block.model))
    argv = [str(BIN / "reranker-server"), "export", "--model", model, "--quantize", quantize]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("w") as log:
        result = subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    return {"seconds": round(time.perf_counter() - started, 1), "exit_code": result.returncode}


def batching_ceiling(
    config: BenchConfig, block: Block, quantize: str, workload: str, first_index: int, log_path: Path
) -> dict[str, Any]:
    """Run bench.ceiling for the concurrency workload in its own process; {} with an error if it fails."""
    settings = config.concurrency
    argv = [
        sys.executable,
        "-m",
        "bench.ceiling",
        "--model",
        str(model_dir(config.build_dir, block.model)),
        "--cache",
        str(server_cache(config)),
        "--quantize",
        quantize,
        "--max-length",
        str(block.max_length),
        "--max-batch-tokens",
        str(config.server_max_batch_tokens),
        "--threads",
        str(config.threads),
        "--workload",
        workload,
        "--k",
        str(settings.k),
        "--requests",
        str(settings.ceiling_requests),
        "--first-index",
        str(first_index),
        "--seed",
        str(config.seed),
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        result = subprocess.run(
            argv, env=base_env(config.threads), stdout=subprocess.PIPE, stderr=log, text=True, check=False
        )
    for line in result.stdout.splitlines():
        if line.startswith(PREFIX):
            return json.loads(line[len(PREFIX) :])
    return {"error": f"bench.ceiling exited {result.returncode}; see {log_path}"}


def make_contender(config: BenchConfig, block: Block, key: ContenderKey) -> WorkerProcess | ServerProcess:
    logs = config.build_dir / "logs"
    tag = f"{block.model}-L{block.max_length}-{key}"
    if key in ("A", "B"):
        source = (
            model_dir(config.build_dir, block.model)
            if key == "A"
            else optimum_dir(config.build_dir, block.model)
        )
        argv = [
            sys.executable,
            "-m",
            "bench.worker",
            "--contender",
            "sentence-transformers" if key == "A" else "optimum",
            "--model",
            str(source),
            "--max-length",
            str(block.max_length),
            "--threads",
            str(config.threads),
            "--seed",
            str(config.seed),
        ]
        return WorkerProcess(key, argv, base_env(config.threads), logs / f"{tag}.log")
    port = free_port()
    env = server_env(config, block, "int8" if key == "D" else "none", port)
    return ServerProcess(key, [str(BIN / "reranker-server"), "serve"], env, logs / f"{tag}.log", port)
