"""How near int8 runs to this CPU's int8 peak at k=100 x 256, and what the CPU graph recipe gains.

    make bench-peak                    # about 5 minutes on 2 cores
    python -m bench.peak --repeats 5

One request of 100 pairs that each fill max_length 256 (the `equal` workload), scored by the
fine-tuned MiniLM-L6 the way the server scores it: its micro-batch plan at the CPU token budget,
tokenising outside the timing (as bench.ceiling does). Useful operations are the matrix products
of every pair (bench.flops, multiply and add counted apart); over the median time they are
GFLOP/s, which for int8 is set against the machine's int8 peak, for fp32 against its fp32 peak.
Both peaks are read at run time (bench.machine): nominal (cores x reported clock x operations per
cycle of the microarchitecture) and measured (ONNX Runtime's int8 GEMM, PyTorch's SGEMM, at
3072^3). The larger of the two is the peak quoted, so a boosting core never flatters a fraction.

Two graph recipes, each fp32 and int8, timed in interleaved rounds in this one process:
- `all-fusions`: ONNX Runtime's transformers optimizer with every BERT fusion and the session's own
  fusions on, what the server built before (SkipLayerNormalization, BiasGelu);
- `server`: the graph and session the server builds now (ModelStore, engine.create_session).
Per operator type, ONNX Runtime's profiler says where each graph's time goes; and the int8 graphs'
scores are compared with their fp32 graphs' on the graded relevance task (per-query Spearman).

Results: bench/results/peak.json and peak.png.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from bench import config as bench_config
from bench.config import ROOT
from bench.fidelity import compare, spearman
from bench.flops import flops_for_lengths
from bench.machine import measured_int8_gemm_gops, measured_sgemm_gflops, this_machine
from bench.noise import foreign_load, snapshot
from bench.peakplot import plot
from bench.prepare import model_dir
from bench.relevance import make_groups
from bench.run import prepare
from bench.shapes import SHAPES
from bench.stats import relative_spread
from bench.workload import make_request, word_pool

MODEL: Final = "minilm-l6-h384"
K: Final = 100
MAX_LENGTH: Final = 256
RECIPES: Final = ("all-fusions", "server")
PRECISIONS: Final = ("fp32", "int8")
FIDELITY_QUERIES: Final = 20
FIDELITY_CANDIDATES: Final = 40
PROFILE_RUNS: Final = 3

Scorer = Callable[[Any], np.ndarray]


@dataclass(frozen=True)
class Variant:
    recipe: str
    precision: str
    graph: Path

    @property
    def key(self) -> str:
        return f"{self.recipe}/{self.precision}"


def build_variants(source: Path, cache: Path, out: Path) -> tuple[list[Variant], Any]:
    """The server's fp32 and int8 graphs from its own store, and the all-fusions recipe's beside them."""
    from onnxruntime.transformers.optimizer import optimize_model
    from reranker_server.int8weights import weights_for_this_cpu
    from reranker_server.preparation.quantize import quantize_int8
    from reranker_server.preparation.store import ModelStore

    store = ModelStore(cache, offline=True)
    served = {
        p: store.resolve(str(source), "main", q, fuse=True) for p, q in (("fp32", "none"), ("int8", "int8"))
    }
    exported = store.resolve(str(source), "main", "none")
    config = exported.config
    all_fusions = out / "all-fusions"
    all_fusions.mkdir(parents=True, exist_ok=True)
    fused = optimize_model(
        str(exported.graph),
        model_type="bert",
        num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]),
        opt_level=0,
        use_gpu=False,
    )
    fused.save_model_to_file(str(all_fusions / "fp32.onnx"))
    (all_fusions / "int8.onnx").unlink(missing_ok=True)
    quantize_int8(
        all_fusions / "fp32.onnx",
        all_fusions / "int8.onnx",
        tokenizer=exported.tokenizer,
        max_length=MAX_LENGTH,
        weights=weights_for_this_cpu(),
    )
    variants = [Variant("all-fusions", p, all_fusions / f"{p}.onnx") for p in PRECISIONS]
    variants += [Variant("server", p, served[p].graph) for p in PRECISIONS]
    return variants, served["int8"]


def sessions(
    variants: Sequence[Variant], files: Any, threads: int, profile_dir: Path | None = None
) -> dict[str, Any]:
    """One session per variant, by the server's create_session; the old recipe keeps every session fusion."""
    import onnxruntime as ort
    from reranker_server.engine import CPU_DISABLED_OPTIMIZERS, create_session

    opened = {}
    for variant in variants:
        disabled = () if variant.recipe == "all-fusions" else None
        if profile_dir is None:
            opened[variant.key] = create_session(
                replace(files, graph=variant.graph),
                backend="cpu",
                threads=threads,
                disabled_optimizers=disabled,
            )
            continue
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_dir / variant.key.replace("/", "-"))
        opened[variant.key] = ort.InferenceSession(
            str(variant.graph),
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(CPU_DISABLED_OPTIMIZERS if disabled is None else disabled),
        )
    return opened


def scorer(engine: Any, session: Any, max_batch_tokens: int) -> Callable[[Any], np.ndarray]:
    """Logits of one request's encoded pairs, micro-batched as the server plans them."""
    from reranker_server.microbatch import plan_micro_batches

    def score(encoded: Any) -> np.ndarray:
        logits = np.empty(len(encoded.lengths), dtype=np.float32)
        for batch in plan_micro_batches(encoded.lengths, max_batch_tokens):
            types = [encoded.type_ids[i] for i in batch] if engine.uses_type_ids else []
            feeds = engine.pad([encoded.ids[i] for i in batch], types)
            (out,) = session.run(None, feeds.arrays)
            logits[batch] = out.reshape(len(batch), -1)[:, 0]
        return logits

    return score


def time_rounds(scorers: dict[str, Scorer], encoded: Any, repeats: int) -> dict[str, list[float]]:
    """Seconds per request, variants interleaved round by round so drift hits each alike; one warm-up."""
    for score in scorers.values():
        score(encoded)
    seconds: dict[str, list[float]] = {key: [] for key in scorers}
    for _ in range(repeats):
        for key, score in scorers.items():
            started = time.perf_counter()
            score(encoded)
            seconds[key].append(time.perf_counter() - started)
    return seconds


def profile(
    profile_sessions: dict[str, Any], engine: Any, encoded: Any, max_batch_tokens: int
) -> dict[str, dict[str, float]]:
    """Milliseconds per request by operator type, from ONNX Runtime's profiler (its kernel times)."""
    shares = {}
    for key, session in profile_sessions.items():
        score = scorer(engine, session, max_batch_tokens)
        for _ in range(PROFILE_RUNS):
            score(encoded)
        events = json.loads(Path(session.end_profiling()).read_text())
        by_op: collections.Counter[str] = collections.Counter()
        for event in events:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                by_op[event["args"]["op_name"]] += event["dur"]
        shares[key] = {op: round(us / 1000 / PROFILE_RUNS, 2) for op, us in by_op.most_common()}
    return shares


def fidelity(scorers: dict[str, Scorer], engine: Any, pool: Sequence[str], seed: int) -> dict[str, Any]:
    """Each recipe's int8 logits against its fp32 logits, and every variant against the labels."""
    pairs = make_groups(pool, FIDELITY_QUERIES, FIDELITY_CANDIDATES, seed + 1000)
    groups = sorted({p.group for p in pairs})
    logits: dict[str, list[float]] = {key: [] for key in scorers}
    for group in groups:
        members = [p for p in pairs if p.group == group]
        encoded = engine.encode(members[0].query, [p.passage for p in members])
        for key, score in scorers.items():
            logits[key] += score(encoded).tolist()
    group_ids = [p.group for p in pairs]
    result: dict[str, Any] = {
        f"{recipe}/int8_vs_fp32": compare(
            logits[f"{recipe}/fp32"], logits[f"{recipe}/int8"], group_ids
        ).to_json()
        for recipe in RECIPES
    }
    result["spearman_vs_relevance"] = {
        key: round(spearman(v, [p.label for p in pairs]), 4) for key, v in logits.items()
    }
    return result


def summarize(
    seconds: dict[str, list[float]], useful_flops: int, peaks: dict[str, dict[str, float]]
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key, values in seconds.items():
        precision = key.split("/")[1]
        median = float(np.median(values))
        achieved = useful_flops / median / 1e9
        peak = peaks[precision]
        summary[key] = {
            "median_ms": round(median * 1000, 1),
            "relative_iqr": round(relative_spread(values), 3),
            "useful_gflops": round(achieved, 1),
            "fraction_of_peak": round(achieved / max(peak.values()), 3),
            "fraction_of_nominal_peak": round(achieved / peak["nominal"], 3),
            "fraction_of_measured_roof": round(achieved / peak["measured"], 3),
        }
    for precision in PRECISIONS:
        before = seconds[f"all-fusions/{precision}"]
        after = seconds[f"server/{precision}"]
        per_round = [b / a for b, a in zip(before, after, strict=True)]
        summary[f"speedup/{precision}"] = {
            "median": round(float(np.median(per_round)), 3),
            "iqr": [round(float(q), 3) for q in np.percentile(per_round, [25, 75])],
        }
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (each variant once per round)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)

    from reranker_server.config import DEFAULT_MAX_BATCH_TOKENS
    from reranker_server.engine import Engine
    from reranker_server.int8weights import weights_for_this_cpu
    from tokenizers import Tokenizer

    started = time.monotonic()
    config = replace(bench_config.quick(), threads=args.threads)
    machine = this_machine()
    peaks = {
        "int8": {
            "nominal": machine.int8_peak_gops(args.threads),
            "measured": measured_int8_gemm_gops(args.threads),
        },
        "fp32": {
            "nominal": machine.peak_gflops(args.threads),
            "measured": measured_sgemm_gflops(args.threads),
        },
    }
    print(
        f"machine: {machine.model_name}, {machine.cores} cores at {machine.clock_mhz} MHz, peaks {peaks}",
        flush=True,
    )
    models = prepare(config)
    out = config.build_dir / "peak"
    variants, int8_files = build_variants(
        model_dir(config.build_dir, MODEL), config.build_dir / "server-cache", out
    )
    engine = Engine(int8_files, backend="cpu", max_length=MAX_LENGTH, threads=args.threads)
    pool = word_pool(Tokenizer.from_file(str(int8_files.tokenizer)).get_vocab())
    request = make_request(pool, "equal", K, 0, config.seed)
    encoded = engine.encode(request.query, request.passages)
    budget = DEFAULT_MAX_BATCH_TOKENS["cpu"]
    before = snapshot()
    opened = sessions(variants, int8_files, args.threads)
    scorers = {key: scorer(engine, session, budget) for key, session in opened.items()}
    seconds = time_rounds(scorers, encoded, args.repeats)
    noise = foreign_load(before, snapshot())
    print(f"timed: { {k: round(float(np.median(v)) * 1000) for k, v in seconds.items()} } ms", flush=True)
    fidelity_result = fidelity(scorers, engine, pool, config.seed)
    out.mkdir(parents=True, exist_ok=True)
    profiles = profile(sessions(variants, int8_files, args.threads, profile_dir=out), engine, encoded, budget)
    useful = flops_for_lengths(SHAPES[MODEL], encoded.lengths.tolist())
    results = {
        "machine": machine.to_json(args.threads)
        | {
            "measured_int8_gemm_gops": peaks["int8"]["measured"],
            "measured_sgemm_gflops": peaks["fp32"]["measured"],
        },
        "started_utc": dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"),
        "duration_s": round(time.monotonic() - started, 1),
        "request": {
            "k": K,
            "max_length": MAX_LENGTH,
            "tokens": int(encoded.lengths.sum()),
            "useful_gflop": round(useful / 1e9, 2),
        },
        "max_batch_tokens": budget,
        "int8_weights": weights_for_this_cpu(),
        "repeats": args.repeats,
        "peaks": {p: {k: round(v, 1) for k, v in values.items()} for p, values in peaks.items()},
        "noise": noise,
        "models": models,
        "seconds": {k: [round(s, 4) for s in v] for k, v in seconds.items()},
        "summary": summarize(seconds, useful, peaks),
        "profile_ms": profiles,
        "fidelity": fidelity_result,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "peak.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.results / "peak.png")
    print(json.dumps(results["summary"], indent=2))
    print(json.dumps({k: v for k, v in fidelity_result.items() if "int8_vs" in k}, indent=2))


if __name__ == "__main__":
    main()
