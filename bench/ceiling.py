"""How much merging concurrent requests can gain at most: the model alone, lone vs merged calls.

Contender E compares 16 clients with one. Part of its gain is overhead that concurrency hides
(HTTP, tokenising, the client's round trip); the rest is the model running bigger calls. This
measures the second part alone, in process, with the server's own engine and batching plan: the
same requests scored one by one (each request's pairs planned and run alone, as a lone client gets
them) and merged into rounds of ROUND_CALLS calls' worth (as the batcher merges concurrent ones).
Tokenising is outside the timing in both. On two cores, where one request of ten snippets already
keeps both busy, this ratio is the ceiling that no batching policy can beat.

Run as `python -m bench.ceiling ...` in its own process, so the threads match the server's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.worker import emit


def rounds(sizes: Sequence[int], budget: int) -> list[list[int]]:
    """Consecutive requests grouped while their tokens fit the budget (the batcher's gathering)."""
    grouped: list[list[int]] = []
    taken = budget + 1
    for index, size in enumerate(sizes):
        if taken + size > budget:
            grouped.append([])
            taken = 0
        grouped[-1].append(index)
        taken += size
    return grouped


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from reranker_server.batcher import ROUND_CALLS
    from reranker_server.engine import Engine
    from reranker_server.microbatch import plan_micro_batches
    from reranker_server.preparation.store import ModelStore
    from tokenizers import Tokenizer

    from bench.workload import make_request, word_pool

    files = ModelStore(Path(args.cache), offline=True).resolve(args.model, "main", args.quantize, fuse=True)
    engine = Engine(files, backend="cpu", max_length=args.max_length, threads=args.threads)
    pool = word_pool(Tokenizer.from_file(str(files.tokenizer)).get_vocab())
    indices = range(args.first_index, args.first_index + args.requests)
    requests = [make_request(pool, args.workload, args.k, index, args.seed) for index in indices]
    encoded = [engine.encode(r.query, r.passages) for r in requests]

    def run(members: list[tuple[int, int]]) -> None:
        lengths = np.array([encoded[r].lengths[row] for r, row in members])
        for batch in plan_micro_batches(lengths, args.max_batch_tokens):
            chosen = [members[i] for i in batch]
            ids = [encoded[r].ids[row] for r, row in chosen]
            types = [encoded[r].type_ids[row] for r, row in chosen] if engine.uses_type_ids else []
            engine.run(engine.pad(ids, types))

    def lone() -> None:
        for r, pairs in enumerate(encoded):
            run([(r, row) for row in range(len(pairs.lengths))])

    def merged() -> None:
        round_tokens = ROUND_CALLS * args.max_batch_tokens
        for group in rounds([pairs.total_tokens for pairs in encoded], round_tokens):
            run([(r, row) for r in group for row in range(len(encoded[r].lengths))])

    lone()
    merged()
    seconds: dict[str, list[float]] = {"lone": [], "merged": []}
    for _ in range(args.repeats):
        for name, job in (("lone", lone), ("merged", merged)):
            started = time.perf_counter()
            job()
            seconds[name].append(time.perf_counter() - started)
    pairs = sum(len(p.lengths) for p in encoded)
    lone_rate = pairs / float(np.median(seconds["lone"]))
    merged_rate = pairs / float(np.median(seconds["merged"]))
    return {
        "pairs": pairs,
        "requests": args.requests,
        "lone_pairs_per_s": round(lone_rate, 2),
        "merged_pairs_per_s": round(merged_rate, 2),
        "ceiling": round(merged_rate / lone_rate, 3),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--cache", required=True, help="the servers' cache, where their graphs already are")
    parser.add_argument("--quantize", choices=["none", "int8"], required=True)
    parser.add_argument("--max-length", type=int, required=True)
    parser.add_argument("--max-batch-tokens", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--k", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--first-index", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    emit(measure(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
