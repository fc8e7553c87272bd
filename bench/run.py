"""`make bench`: build the models, run every contender interleaved, write results JSON + PNG.

    python -m bench.run            # the full grid (~20 min on 2 cores)
    python -m bench.run --quick    # a smoke run of the same code paths (a few minutes)

Results: bench/results/results.json and bench/results/latency.png (quick runs write under
bench/results/raw/, which is not committed); raw per-request samples in bench/results/raw/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import config as bench_config
from bench.analyze import summarize_point
from bench.blocks import run_block
from bench.config import CONTENDERS, ROOT, BenchConfig
from bench.guard import MemoryGuard
from bench.launch import base_env, export_for_server
from bench.machine import measured_sgemm_gflops, this_machine
from bench.noise import foreign_load, snapshot
from bench.plot import plot
from bench.report import gflops_table, latency_table, targets_table
from bench.targets import evaluate

STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


def prepare(config: BenchConfig) -> dict[str, Any]:
    """Models and contender B's export, built in a child process (torch stays out of this one)."""
    say("preparing models (first run: fine-tune MiniLM ~1 min, build and export the other shapes)")
    log_path = config.build_dir / "logs" / "prepare.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.prepare",
                "--config",
                config.name,
                "--threads",
                str(config.threads),
            ],
            cwd=ROOT,
            env=base_env(config.threads),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise SystemExit(f"bench.prepare failed ({result.returncode}); see {log_path}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("@@prepare "))
    return json.loads(line.removeprefix("@@prepare "))


def export_servers(config: BenchConfig) -> dict[str, Any]:
    exports: dict[str, Any] = {}
    for block in config.blocks:
        for key, quantize in (("C", "none"), ("D", "int8")):
            name = f"{block.model}/{quantize}"
            if key in block.contenders and name not in exports:
                say(f"reranker-server export --model {block.model} --quantize {quantize}")
                exports[name] = export_for_server(
                    config,
                    block,
                    quantize,
                    config.build_dir / "logs" / f"export-{block.model}-{quantize}.log",
                )
                say(f"  -> {exports[name]}")
    return exports


def build_results(
    config: BenchConfig, machine: dict[str, Any], runs: list[Any], extra: dict[str, Any]
) -> dict[str, Any]:
    cells = [
        summarize_point(run.model, run.max_length, point, machine, config.server_max_batch_tokens)
        for run in runs
        for point in run.points
    ]
    fidelity = next((run.fidelity for run in runs if run.fidelity), None)
    concurrency = next((run.concurrency for run in runs if run.concurrency), None)
    results = {
        "machine": machine,
        "config": config.to_json(),
        "contenders": CONTENDERS,
        **extra,
        "blocks": [run.summary() for run in runs],
        "cells": cells,
        "fidelity": fidelity,
        "concurrency": concurrency,
    }
    results["targets"] = evaluate(results)
    return results


def print_tables(results: dict[str, Any]) -> None:
    print("\n" + latency_table(results["cells"]))
    print("\n" + gflops_table(results["cells"], results["machine"]))
    print("\n" + targets_table(results["targets"]))
    print(f"\nother tenants' CPU while timing: {results['noise']}")


def replot(path: Path) -> None:
    results = json.loads(path.read_text())
    plot(results, path.with_suffix(".png") if path.stem != "results" else path.with_name("latency.png"))
    print_tables(results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: one small block, results under raw/")
    parser.add_argument(
        "--contenders", default="ABCD", help="subset of contenders to run, e.g. AB while the server is down"
    )
    parser.add_argument(
        "--block",
        action="append",
        default=[],
        metavar="MODEL:L",
        help="rerun only this block, e.g. minilm-l6-h384:512 (repeatable); writes results-<block>.json",
    )
    parser.add_argument(
        "--replot", metavar="RESULTS_JSON", help="only redraw the PNG and tables of a results file"
    )
    args = parser.parse_args(argv)
    if args.replot:
        replot(Path(args.replot))
        return
    config = bench_config.only(bench_config.quick() if args.quick else bench_config.full(), args.contenders)
    config = bench_config.select_blocks(config, args.block)
    # The orchestrator tokenises too (lengths for padding/FLOPs): same pool size as the contenders.
    os.environ["RAYON_NUM_THREADS"] = str(config.threads)
    out_dir = config.results_dir / "raw" if args.quick else config.results_dir
    raw_dir = config.results_dir / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    raw_path = raw_dir / f"samples-{config.name}-{stamp}.jsonl"

    machine = this_machine().to_json(config.threads)
    machine["measured_sgemm_gflops"] = measured_sgemm_gflops(config.threads)
    say(
        f"machine: {machine['model_name']}, {machine['cores']} cores, "
        f"fp32 peak {machine['fp32_peak_gflops']} GFLOP/s at the reported clock, "
        f"measured SGEMM {machine['measured_sgemm_gflops']} GFLOP/s"
    )
    models = prepare(config)
    exports = export_servers(config)
    guard = MemoryGuard(min_available_bytes=int(config.min_available_gib * 2**30))
    guard.start()
    before = snapshot()
    runs = []
    try:
        for block in config.blocks:
            runs.append(run_block(config, block, guard, raw_path, say))
    finally:
        guard.stop()
    noise = foreign_load(before, snapshot())
    # The roof is the best SGEMM seen in the run: each block measures it after waiting for quiet.
    probes = [machine["measured_sgemm_gflops"]] + [run.sgemm_gflops for run in runs if run.sgemm_gflops]
    machine["measured_sgemm_gflops"] = max(probes)
    machine["sgemm_probes_gflops"] = probes
    results = build_results(
        config,
        machine,
        runs,
        {
            "started_utc": stamp,
            "duration_s": round(time.monotonic() - STARTED, 1),
            "noise": noise,
            "models": models,
            "server_exports": exports,
            "raw_samples": str(raw_path.relative_to(ROOT)),
        },
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "quick" if args.quick else "results" + "".join(f"-{b.replace(':', '-L')}" for b in args.block)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(
        results, out_dir / ("quick.png" if args.quick else "latency.png" if not args.block else f"{name}.png")
    )
    print_tables(results)
    say(f"wrote {out_dir / (name + '.json')}")


if __name__ == "__main__":
    main()
