"""Capacity per pod at the SLO: open-loop Poisson load against five servers on loopback.

    make bench-load                      # the quoted sweep (chat RAG at 4000 ms, snippets at 600 ms)
    python -m bench.loadsweep            # the full sweep at the issue's SLOs (see below)
    python -m bench.loadsweep --quick    # a smoke run of the same code paths (~5 min)
    python -m bench.loadsweep --replot bench/results/load.json

Per workload (chat RAG: k=40, 20-256-token passages, max_length 256, SLO 1000 ms; snippets: k=10,
16-64-token passages, SLO 300 ms; `--slo` / `--slo-scale` change them) the five contenders are
started side by side (the seed's recipe, optimum's export behind FastAPI, our server fp32, int8, and
int8 with its deadline at the SLO: each on the same 2 cores),
warmed up, and their unloaded latency probed. Each then climbs its own ladder of offered rates,
from 0.4 x parallelism / latency by x1.25, until P95 passes the SLO (or errors reach 1 %) and on
to twice that rate. Steps run in rounds, one step per contender per round with the order
rotating, so a shared machine's drift over the run hits every contender alike. After each step
the contender must go idle (a recipe keeps scoring requests its callers abandoned) before the
next one runs.

Duration of the full sweep, about 30-40 minutes on 2 cores: each step holds its rate for 20 s,
stretched at low rates to expect 30 requests (a P95 needs samples) but never past 45 s; each
contender climbs ~7-10 steps per workload (~x2.5 below the crossing at x1.25 per step, then 4
steps to x2, capped at 11 steps); after each step come the last answers (up to 5 SLOs) and the
drain of a collapsed recipe's backlog; and ~1 min of start-up and warm-up per workload. Chat
RAG, where the rates are lowest and the steps longest, takes about 15 minutes, snippets about
12. The first run also fine-tunes MiniLM and exports the models (~3 min). `--step-s` trades the
P95's sample size for time.

Results: bench/results/load.json and bench/results/load.png (quick runs: bench/results/raw/
load-quick.*); every request's record in bench/results/raw/load-samples-*.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Final

import httpx
from tokenizers import Tokenizer

from bench import config as bench_config
from bench import loadconfig
from bench.config import ROOT
from bench.guard import MemoryGuard
from bench.load import encode, run_schedule, sequential_latencies
from bench.loadboot import bootstrap
from bench.loadconfig import BASELINE, LOAD_CONTENDERS, LoadConfig, LoadContender, LoadWorkload
from bench.loadcontenders import Launch, export_servers, make_contender, tree_pids, wait_idle
from bench.loadplan import Ladder, arrival_times, next_rate, start_rate, step_duration
from bench.loadplot import plot
from bench.loadreport import bootstrap_table, capacity_table, steps_table
from bench.loadstats import StepSummary, capacity, capacity_ratio, summarize_step
from bench.machine import measured_sgemm_gflops, this_machine
from bench.noise import foreign_load, snapshot
from bench.prepare import model_dir
from bench.procs import ContenderFailed
from bench.run import prepare
from bench.workload import make_request, word_pool

#: Request ids of the load streams, apart from the latency grid's and the concurrency run's.
FIRST_INDEX: Final = 40_000
GIB: Final = 2**30
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


@dataclass
class Sweep:
    """One contender's ladder on one workload, as it runs."""

    key: LoadContender
    launch: Launch
    ladder: Ladder | None = None
    probe_latency_s: float | None = None
    steps: list[StepSummary] = field(default_factory=list)
    step_extras: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    done: bool = False

    def tried(self) -> list[tuple[float, bool]]:
        return [(step.rate_rps, step.passed) for step in self.steps]

    def to_json(self, config: LoadConfig) -> dict[str, Any]:
        process = self.launch.process
        data: dict[str, Any] = {
            "description": LOAD_CONTENDERS[self.key],
            "parallelism": self.launch.parallelism,
            "cold_start_s": round(process.cold_start_s, 2) if process.cold_start_s else None,
            "peak_rss_gib": round(process.peak_rss_bytes() / GIB, 2),
            "probe_latency_s": round(self.probe_latency_s, 4) if self.probe_latency_s else None,
            "start_rps": round(self.ladder.start_rps, 4) if self.ladder else None,
            "error": self.error,
            "steps": [
                step.to_json() | extra for step, extra in zip(self.steps, self.step_extras, strict=True)
            ],
        }
        if self.steps:
            data["capacity"] = capacity(self.steps, config.overload_multiple).to_json()
        return data


def bodies_for(config: LoadConfig, workload: LoadWorkload) -> list[bytes]:
    tokenizer = Tokenizer.from_file(str(model_dir(config.build_dir, config.model) / "tokenizer.json"))
    pool = word_pool(tokenizer.get_vocab())
    return [
        encode(make_request(pool, workload.kind, workload.k, FIRST_INDEX + index, config.seed))
        for index in range(config.distinct_requests)
    ]


def schedule_seed(config: LoadConfig, workload: LoadWorkload) -> list[int]:
    """One arrival stream per workload, the same whatever its SLO is scaled to."""
    return [config.seed, workload.k, workload.max_length]


def start(
    config: LoadConfig, sweep: Sweep, bodies: list[bytes], workload: LoadWorkload, guard: MemoryGuard
) -> None:
    """Start, warm up (concurrent requests, so every worker is warm) and probe one contender."""
    process = sweep.launch.process
    timeout_s = workload.slo_s * config.timeout_per_slo
    try:
        process.start(guard, int(bench_config.WORKER_MEMORY_CAP_GIB * GIB))
    except ContenderFailed as exc:
        sweep.error, sweep.done = str(exc), True
        say(f"  {sweep.key}: {exc}")
        return
    burst = [0.0] * (2 * sweep.launch.parallelism)
    for _ in range(config.warmup_rounds):
        run_schedule(process.base_url, bodies, burst, timeout_s * 4)
    wait_idle(process.pid, config.idle_max_cores, config.idle_timeout_s)
    try:
        latencies = sequential_latencies(process.base_url, bodies, config.probe_requests, timeout_s * 4)
    except httpx.HTTPError as exc:
        sweep.error, sweep.done = f"unloaded probe failed: {exc!r}; see {process.log_path}", True
        say(f"  {sweep.key}: {sweep.error}")
        return
    sweep.probe_latency_s = statistics.median(latencies)
    sweep.ladder = Ladder(
        start_rps=start_rate(sweep.probe_latency_s, sweep.launch.parallelism, config.start_fraction),
        factor=config.factor,
        overload_multiple=config.overload_multiple,
        max_steps=config.max_steps,
    )
    say(
        f"  {sweep.key}: ready in {process.cold_start_s:.1f} s, "
        f"one request {sweep.probe_latency_s * 1000:.0f} ms, ladder from {sweep.ladder.start_rps:.2f}/s"
    )


def run_step(
    config: LoadConfig, workload: LoadWorkload, sweep: Sweep, bodies: list[bytes], rate: float, raw: IO[str]
) -> None:
    process = sweep.launch.process
    duration_s = step_duration(rate, config.step_s, config.min_requests, config.max_step_s)
    schedule = arrival_times(rate, duration_s, schedule_seed(config, workload))
    pids = tree_pids(process.pid)
    before = snapshot(pids)
    records = run_schedule(process.base_url, bodies, schedule, workload.slo_s * config.timeout_per_slo)
    idle = wait_idle(process.pid, config.idle_max_cores, config.idle_timeout_s)
    noise = foreign_load(before, snapshot(pids))
    summary = summarize_step(records, rate, duration_s, workload.slo_s, config.max_error_share)
    sweep.steps.append(summary)
    sweep.step_extras.append({"idle": idle, "noise": noise})
    raw.write(
        json.dumps(
            {
                "workload": workload.name,
                "contender": sweep.key,
                "rate_rps": rate,
                "duration_s": duration_s,
                "slo_s": workload.slo_s,
                "records": [record.to_json() for record in records],
            }
        )
        + "\n"
    )
    raw.flush()
    p95 = "-" if summary.p95_s is None else f"{summary.p95_s * 1000:.0f} ms"
    say(
        f"  {sweep.key:<16} {rate:6.2f}/s: P95 {p95}, goodput {summary.goodput_rps:.2f}/s, "
        f"errors {summary.error_share:.1%} (429 {summary.shed_share:.1%}, "
        f"timeouts {summary.timeout_share:.1%}), drained in {idle['waited_s']:.1f} s, "
        f"others {noise['other_tenants_avg_cores']:.2f} cores"
        f"{'' if summary.passed else '  FAIL'}"
    )
    if process.process is not None and process.process.poll() is not None:
        sweep.error, sweep.done = str(process.failure("died during the step")), True


def run_workload(
    config: LoadConfig, workload: LoadWorkload, guard: MemoryGuard, raw: IO[str]
) -> dict[str, Any]:
    say(f"workload {workload.name}: k={workload.k}, {workload.kind} passages, SLO {workload.slo_ms} ms")
    bodies = bodies_for(config, workload)
    sweeps = [Sweep(key, make_contender(config, workload, key)) for key in config.contenders]
    try:
        for sweep in sweeps:
            start(config, sweep, bodies, workload, guard)
        round_index = 0
        while not all(sweep.done for sweep in sweeps):
            shift = round_index % len(sweeps)
            for sweep in sweeps[shift:] + sweeps[:shift]:
                if sweep.done or sweep.ladder is None:
                    continue
                rate = next_rate(sweep.ladder, sweep.tried())
                if rate is None:
                    sweep.done = True
                    continue
                run_step(config, workload, sweep, bodies, rate, raw)
            round_index += 1
    finally:
        for sweep in sweeps:
            sweep.launch.process.stop(guard)
    contenders = {sweep.key: sweep.to_json(config) for sweep in sweeps}
    result: dict[str, Any] = {
        "name": workload.name,
        "kind": workload.kind,
        "k": workload.k,
        "max_length": workload.max_length,
        "slo_ms": workload.slo_ms,
        "client_timeout_s": workload.slo_s * config.timeout_per_slo,
        "contenders": contenders,
    }
    baseline = next((s for s in sweeps if s.key == BASELINE and s.steps), None)
    if baseline is not None:
        theirs = capacity(baseline.steps, config.overload_multiple)
        result["ratios_vs_baseline"] = {
            sweep.key: capacity_ratio(capacity(sweep.steps, config.overload_multiple), theirs).to_json()
            for sweep in sweeps
            if sweep.key != BASELINE and sweep.steps
        }
    return result


def print_tables(results: dict[str, Any]) -> None:
    print("\n" + steps_table(results))
    print("\n" + capacity_table(results))
    if "bootstrap" in results:
        print("\n" + bootstrap_table(results))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: short steps, few rates; under raw/")
    parser.add_argument(
        "--contender", action="append", default=[], choices=sorted(LOAD_CONTENDERS), help="repeatable"
    )
    parser.add_argument(
        "--workload", action="append", default=[], choices=["chat-rag", "snippets"], help="repeatable"
    )
    parser.add_argument("--step-s", type=float, help="seconds of arrivals per offered rate")
    parser.add_argument(
        "--slo-scale", type=float, default=1.0, help="multiply both SLOs (a much slower or faster machine)"
    )
    parser.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="WORKLOAD=MS",
        help="set one workload's SLO (after --slo-scale), e.g. chat-rag=4000; repeatable",
    )
    parser.add_argument(
        "--replot", metavar="RESULTS_JSON", help="only redraw the PNG and tables of a results file"
    )
    args = parser.parse_args(argv)
    if args.replot:
        path = Path(args.replot)
        results = json.loads(path.read_text())
        plot(results, path.with_suffix(".png"))
        print_tables(results)
        return
    config = loadconfig.quick() if args.quick else loadconfig.full()
    config = loadconfig.only(config, args.contender, args.workload)
    if args.step_s:
        config = replace(config, step_s=args.step_s)
    if args.slo_scale != 1.0:
        config = loadconfig.scale_slos(config, args.slo_scale)
    for setting in args.slo:
        workload, _, ms = setting.partition("=")
        config = loadconfig.with_slo(config, workload, int(ms) if ms.isdigit() else 0)
    # This process tokenises nothing while timing, but keep its pools as small as the contenders'.
    os.environ["RAYON_NUM_THREADS"] = str(config.threads)
    raw_dir = config.results_dir / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    raw_path = raw_dir / f"load-samples-{config.name}-{stamp}.jsonl"

    machine = this_machine().to_json(config.threads)
    machine["measured_sgemm_gflops"] = measured_sgemm_gflops(config.threads)
    say(
        f"machine: {machine['model_name']}, {machine['cores']} cores, "
        f"measured SGEMM {machine['measured_sgemm_gflops']} GFLOP/s"
    )
    models = prepare(replace(bench_config.quick(), threads=config.threads, build_dir=config.build_dir))
    exports = export_servers(config, config.build_dir / "logs")
    say(f"server exports: {exports}")
    guard = MemoryGuard(min_available_bytes=int(bench_config.MIN_AVAILABLE_GIB * GIB))
    guard.start()
    before = snapshot()
    try:
        with raw_path.open("w") as raw:
            workloads = [run_workload(config, workload, guard, raw) for workload in config.workloads]
    finally:
        guard.stop()
    results = {
        "machine": machine,
        "config": config.to_json(),
        "contenders": {key: LOAD_CONTENDERS[key] for key in config.contenders},
        "baseline": BASELINE,
        "started_utc": stamp,
        "duration_s": round(time.monotonic() - STARTED, 1),
        "noise": foreign_load(before, snapshot()),
        "models": models,
        "server_exports": exports,
        "raw_samples": str(raw_path.relative_to(ROOT)) if raw_path.is_relative_to(ROOT) else str(raw_path),
        "workloads": workloads,
    }
    say("bootstrap: resampling every step's requests for the interquartile ranges")
    results["bootstrap"] = bootstrap(results, raw_path)
    out_dir = raw_dir if args.quick else config.results_dir
    subset = "".join(f"-{name}" for name in [*args.workload, *args.contender])
    name = ("load-quick" if args.quick else "load") + subset
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out_dir / f"{name}.png")
    print_tables(results)
    say(f"wrote {out_dir / (name + '.json')} and {name}.png")


if __name__ == "__main__":
    main()
