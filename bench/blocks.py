"""Run one block: start its contenders one after another, then measure cell by cell, interleaved.

Within a cell every round sends the same request to each contender in turn (the starting
contender rotates each round), with a short settle gap so one contender's spinning threads
do not run into the next one's timing. Round 0 warms up and is not reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import httpx
from tokenizers import Tokenizer

from bench.concurrency import round_orders, run_level, summarize
from bench.config import BenchConfig, Block, Point
from bench.contenders import Contender, HttpContender, InProcessContender
from bench.fidelity import compare, spearman
from bench.guard import MemoryGuard
from bench.httpclient import ServerError, delta_total
from bench.launch import batching_ceiling, make_contender
from bench.machine import measured_sgemm_gflops
from bench.noise import foreign_load, snapshot, wait_for_quiet
from bench.prepare import model_dir
from bench.procs import ContenderFailed, ServerProcess, WorkerProcess
from bench.relevance import make_groups
from bench.workload import Request, make_request, word_pool

FIRST_REQUEST_INDEX: Final = 10_000
CONCURRENCY_INDEX: Final = 20_000
SERVER_SERIES: Final = (
    "reranker_padding_efficiency_sum",
    "reranker_padding_efficiency_count",
    "reranker_batch_tokens_sum",
    "reranker_batch_pairs_sum",
    "reranker_batch_pairs_count",
    "reranker_inference_seconds_sum",
    "reranker_inference_seconds_count",
    "reranker_queue_wait_seconds_sum",
    "reranker_request_duration_seconds_sum",
    "reranker_request_duration_seconds_count",
)
GIB: Final = 2**30


@dataclass
class BlockRun:
    """Everything measured in one block, as plain data for the results file."""

    model: str
    max_length: int
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)
    fidelity: dict[str, Any] | None = None
    concurrency: list[dict[str, Any]] | None = None
    quiet_wait: dict[str, Any] | None = None
    sgemm_gflops: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_length": self.max_length,
            "processes": self.processes,
            "quiet_wait": self.quiet_wait,
            "sgemm_gflops_at_start": self.sgemm_gflops,
        }


class BlockRunner:
    def __init__(
        self, config: BenchConfig, block: Block, guard: MemoryGuard, raw: IO[str], say: Callable[[str], None]
    ):
        self.config, self.block, self.guard, self.raw, self.say = config, block, guard, raw, say
        tokenizer_path = model_dir(config.build_dir, block.model) / "tokenizer.json"
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(block.max_length)
        self.pool = word_pool(self.tokenizer.get_vocab())
        self.processes: dict[str, WorkerProcess | ServerProcess] = {}
        self.contenders: dict[str, Contender] = {}
        self.failed: dict[str, str] = {}
        self.run = BlockRun(block.model, block.max_length)

    def request(self, workload: str, k: int, index: int) -> Request:
        return make_request(self.pool, workload, k, index, self.config.seed)  # type: ignore[arg-type]

    def lengths(self, request: Request) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(request.pairs())]

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        cap = int(self.config.worker_memory_cap_gib * GIB)
        for key in self.block.contenders:
            process = make_contender(self.config, self.block, key)
            self.processes[key] = process
            entry: dict[str, Any] = {}
            try:
                process.start(self.guard, cap)
            except ContenderFailed as exc:
                self.fail(key, str(exc))
                self.run.processes[key] = {"error": str(exc)}
                continue
            entry["cold_start_s"] = round(process.cold_start_s or 0.0, 3)
            if isinstance(process, ServerProcess):
                contender: Contender = HttpContender(key, process, self.config.request_timeout_s)
                try:
                    entry["first_request"] = self._first_requests(contender)
                except (ServerError, ContenderFailed) as exc:
                    entry["first_request"] = {"error": str(exc)}
                entry["server_warmup"] = self._warmup_gauges(contender)
            else:
                contender = InProcessContender(key, process, self.config.request_timeout_s)
            self.contenders[key] = contender
            self.run.processes[key] = entry
            self.say(f"  {key} ready in {entry['cold_start_s']:.1f} s" + _first_note(entry))

    def _first_requests(self, server: HttpContender) -> dict[str, Any]:
        """The first request after /ready, then a few of the same shape right after it.

        Comparing the first with its immediate successors (not with a median taken minutes later)
        keeps a shared machine's changing load out of the warm-up verdict.
        """
        workload, k = self.block.first_request
        seconds, others = [], []
        for i in range(1 + self.config.first_request_followups):
            index = FIRST_REQUEST_INDEX + i
            before = snapshot([server.process.pid])
            seconds.append(server.score(workload, k, index, self.request(workload, k, index)).seconds)
            others.append(foreign_load(before, snapshot([server.process.pid]))["other_tenants_avg_cores"])
        followups = sorted(seconds[1:])
        return {
            "workload": workload,
            "k": k,
            "seconds": round(seconds[0], 4),
            "followup_median_s": round(followups[len(followups) // 2], 4) if followups else None,
            "followups_s": [round(s, 4) for s in seconds[1:]],
            "other_tenants_cores": others,
        }

    def _warmup_gauges(self, server: HttpContender) -> dict[str, float]:
        """What the server says its warm-up cost: total time and one k-cap request at max_length."""
        try:
            samples = server.metrics()
        except (httpx.HTTPError, ValueError):
            return {}
        names = ("reranker_warmup_duration_seconds", "reranker_warmup_kcap_latency_seconds")
        return {name: round(samples[name + "{}"], 3) for name in names if name + "{}" in samples}

    def fail(self, key: str, reason: str) -> None:
        self.failed[key] = reason
        contender = self.contenders.pop(key, None)
        if contender is not None:
            contender.close()
        self.say(f"  {key} FAILED: {reason.splitlines()[0]}")

    def stop(self) -> None:
        for key, process in self.processes.items():
            if key in self.contenders:
                self.contenders[key].close()
            process.stop(self.guard)
            entry = self.run.processes.setdefault(key, {})
            entry["peak_rss_mb"] = round(process.peak_rss_bytes() / 2**20, 1)
            if process.killed_reason():
                entry["killed"] = process.killed_reason()
            if key in self.failed:
                entry["failed"] = self.failed[key]

    # -- measuring ------------------------------------------------------------------------------

    def servers(self) -> dict[str, HttpContender]:
        return {key: c for key, c in self.contenders.items() if isinstance(c, HttpContender)}

    def _scrape_all(self) -> dict[str, dict[str, float]]:
        scrapes = {}
        for key, server in self.servers().items():
            try:
                scrapes[key] = server.metrics()
            except (httpx.HTTPError, ValueError) as exc:  # a broken /metrics must not lose the latencies
                self.say(f"  {key} /metrics failed: {exc}")
        return scrapes

    def measure_point(self, point: Point) -> None:
        rounds = self.config.warmup_rounds + point.reps
        requests = [self.request(point.workload, point.k, index) for index in range(rounds)]
        lengths = [self.lengths(request) for request in requests]
        tokenize_s = _time_tokenizing(self.tokenizer, requests)
        before = self._scrape_all()
        samples: dict[str, dict[int, float]] = {key: {} for key in self.block.contenders}
        errors: dict[str, str] = {}
        other_cores: dict[str, float] = {}
        for round_no in range(rounds):
            live = [p.pid for key, p in self.processes.items() if key in self.contenders]
            round_start = snapshot(live)
            keys = [key for key in self.block.contenders if key in self.contenders]
            order = keys[round_no % len(keys) :] + keys[: round_no % len(keys)] if keys else []
            for key in order:
                if key not in self.contenders:
                    continue
                time.sleep(self.config.settle_s)
                try:
                    timed = self.contenders[key].score(point.workload, point.k, round_no, requests[round_no])
                except (ContenderFailed, ServerError) as exc:
                    errors[key] = str(exc)
                    self.fail(key, str(exc))
                    continue
                warmup = round_no < self.config.warmup_rounds
                if not warmup:
                    samples[key][round_no] = timed.seconds
                self._record(point, round_no, key, timed.seconds, warmup)
            other_cores[str(round_no)] = foreign_load(round_start, snapshot(live))["other_tenants_avg_cores"]
        after = self._scrape_all()
        self.run.points.append(
            {
                "workload": point.workload,
                "k": point.k,
                "warmup_rounds": self.config.warmup_rounds,
                "samples": {
                    key: {str(r): s for r, s in values.items()} for key, values in samples.items() if values
                },
                "lengths": {str(r): lengths[r] for r in range(rounds)},
                "tokenize_s_per_pair": tokenize_s,
                "other_tenants_cores": other_cores,
                "server": {
                    key: {name: delta_total(before[key], after[key], name) for name in SERVER_SERIES}
                    for key in after
                    if key in before
                },
                "peak_rss_mb": {
                    key: round(p.peak_rss_bytes() / 2**20, 1) for key, p in self.processes.items()
                },
                "errors": errors
                | {key: self.failed[key] for key in self.failed if key not in self.contenders},
            }
        )
        medians = {
            key: sorted(values.values())[len(values) // 2] for key, values in samples.items() if values
        }
        shown = "  ".join(f"{key} {seconds * 1000:8.1f} ms" for key, seconds in medians.items())
        self.say(f"  {point.workload:5} k={point.k:<3} L={self.block.max_length}: {shown}")

    def _record(self, point: Point, round_no: int, key: str, seconds: float, warmup: bool) -> None:
        self.raw.write(
            json.dumps(
                {
                    "model": self.block.model,
                    "max_length": self.block.max_length,
                    "workload": point.workload,
                    "k": point.k,
                    "round": round_no,
                    "contender": key,
                    "seconds": seconds,
                    "warmup": warmup,
                }
            )
            + "\n"
        )
        self.raw.flush()

    def measure_fidelity(self) -> None:
        """Fine-tuned model, logits of int8 (D) vs fp32 (C) server, and fp32 server vs PyTorch (A)."""
        pairs = make_groups(
            self.pool, self.config.fidelity_queries, self.config.fidelity_candidates, self.config.seed + 1000
        )
        groups = sorted({p.group for p in pairs})
        logits: dict[str, list[float]] = {}
        for key in ("A", "C", "D"):
            if key not in self.contenders:
                continue
            scores: list[float] = []
            for group in groups:
                members = [p for p in pairs if p.group == group]
                scores += self.contenders[key].score_pairs(members[0].query, [p.passage for p in members])
            logits[key] = scores
        group_ids = [p.group for p in pairs]
        labels = [p.label for p in pairs]
        result: dict[str, Any] = {
            "queries": len(groups),
            "candidates_per_query": self.config.fidelity_candidates,
        }
        if "C" in logits and "D" in logits:
            result["int8_vs_fp32"] = compare(logits["C"], logits["D"], group_ids).to_json()
        if "A" in logits and "C" in logits:
            result["server_fp32_vs_pytorch"] = compare(logits["A"], logits["C"], group_ids).to_json()
        result["spearman_vs_relevance"] = {
            key: round(spearman(values, labels), 4) for key, values in logits.items()
        }
        self.run.fidelity = result
        self.say(f"  fidelity: {json.dumps(result.get('int8_vs_fp32', {}))}")

    def measure_concurrency(self) -> None:
        settings = self.config.concurrency
        ceilings = {}
        for workload in settings.workloads:
            for key in settings.servers:
                if key in self.servers():
                    log = self.config.build_dir / "logs" / f"ceiling-{self.block.model}-{workload}-{key}.log"
                    quantize = "int8" if key == "D" else "none"
                    ceilings[workload, key] = batching_ceiling(
                        self.config, self.block, quantize, workload, CONCURRENCY_INDEX, log
                    )
                    self.say(f"  E {key} {workload:5} model-only batching ceiling: {ceilings[workload, key]}")
        runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for workload in settings.workloads:
            requests = [
                self.request(workload, settings.k, CONCURRENCY_INDEX + i)
                for i in range(settings.requests_per_level)
            ]
            for round_no, order in enumerate(round_orders(settings.clients, settings.rounds)):
                keys = settings.servers if round_no % 2 == 0 else tuple(reversed(settings.servers))
                for clients in order:
                    for key in keys:
                        run = self.run_clients(key, requests, clients)
                        if run is not None:
                            runs.setdefault((workload, key, clients), []).append(run)
        levels = []
        for (workload, key, clients), level_runs in runs.items():
            baseline = runs.get((workload, key, 1), [])
            if len(baseline) != len(level_runs) or any("error" in run for run in level_runs + baseline):
                errors = [run["error"] for run in level_runs + baseline if "error" in run]
                level = {"clients": clients, "error": "; ".join(errors) or "rounds incomplete"}
            else:
                level = summarize(level_runs, baseline)
            level |= {"server": key, "workload": workload, "max_length": self.block.max_length}
            level["batching_ceiling"] = ceilings.get((workload, key), {})
            level["other_tenants_cores"] = max(run.get("other_tenants_cores", 0.0) for run in level_runs)
            levels.append(level)
            self.say(
                f"  E {key} {workload:5} clients={clients:<2}: {level.get('pairs_per_s', '-')} pairs/s "
                f"(rounds {level.get('pairs_per_s_per_round', '-')}), gain vs 1 client "
                f"{level.get('gain_vs_one_client', '-')}, P95 {level.get('p95_s', '-')} s"
            )
        self.run.concurrency = levels

    def run_clients(self, key: str, requests: list[Request], clients: int) -> dict[str, Any] | None:
        """One level of one round against server `key`, with the other tenants' CPU during it."""
        server = self.servers().get(key)
        if server is None:
            return None
        time.sleep(self.config.settle_s)
        before = snapshot([server.process.pid])
        try:
            run = run_level(server.process.base_url, requests, clients, self.config.request_timeout_s)
        except ServerError as exc:
            run = {"clients": clients, "error": str(exc)}
        load = foreign_load(before, snapshot([server.process.pid]))
        run["other_tenants_cores"] = load["other_tenants_avg_cores"]
        return run

    def execute(self) -> BlockRun:
        self.say(
            f"block {self.block.model} L={self.block.max_length}: starting {', '.join(self.block.contenders)}"
        )
        if self.config.quiet_timeout_s > 0:
            limit, timeout = self.config.quiet_max_other_cores, self.config.quiet_timeout_s
            self.run.quiet_wait = wait_for_quiet(limit, window_s=5.0, timeout_s=timeout)
            self.say(f"  waited for a quieter machine: {self.run.quiet_wait}")
        self.run.sgemm_gflops = measured_sgemm_gflops(self.config.threads)
        try:
            self.start()
            for point in self.block.points:
                self.measure_point(point)
            if self.block.fidelity:
                self.measure_fidelity()
            if self.block.concurrency:
                self.measure_concurrency()
        finally:
            self.stop()
        return self.run


def _first_note(entry: dict[str, Any]) -> str:
    first = entry.get("first_request")
    if not first:
        return ""
    if "seconds" in first:
        return (
            f", first request (k={first['k']}) {first['seconds'] * 1000:.0f} ms, "
            f"next ones {[round(s * 1000) for s in first['followups_s']]} ms"
        )
    return f", first request failed: {first['error'][:200]}"


def _time_tokenizing(tokenizer: Tokenizer, requests: list[Request]) -> dict[str, float]:
    """Seconds per pair to tokenise one request: Rust batch encode (pool threads) and pair by pair."""
    pairs = [pair for request in requests for pair in request.pairs()]
    started = time.perf_counter()
    for request in requests:
        tokenizer.encode_batch(request.pairs())
    batch = (time.perf_counter() - started) / len(pairs)
    started = time.perf_counter()
    for pair in pairs:
        tokenizer.encode(*pair)
    single = (time.perf_counter() - started) / len(pairs)
    return {"encode_batch": batch, "encode_one_by_one": single}


def run_block(
    config: BenchConfig, block: Block, guard: MemoryGuard, raw_path: Path, say: Callable[[str], None]
) -> BlockRun:
    with raw_path.open("a") as raw:
        return BlockRunner(config, block, guard, raw, say).execute()
