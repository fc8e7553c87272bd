"""One in-process contender in its own process: A (sentence-transformers) or B (optimum + ONNX Runtime).

Each contender gets a process so its memory (B's one-call recipe grows to GBs) is measured
alone and can be killed without taking the benchmark down. The orchestrator talks to it with
JSON lines on stdin/stdout; protocol lines carry a prefix so library chatter on stdout is ignored.
Only the scoring call is timed: tokenisation + model, what a caller of the recipe waits for.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

PREFIX: Final = "@@bench "

Scorer = Callable[[Sequence[tuple[str, str]]], list[float]]


def peak_rss_kb() -> int:
    """VmHWM: the kernel's high-water mark of this process's resident memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def sentence_transformers_scorer(model_dir: str, max_length: int) -> Scorer:
    """Contender A: CrossEncoder.predict, eager PyTorch fp32, batch_size 32 (its default), logits out."""
    import torch
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(model_dir, max_length=max_length, device="cpu")
    identity = torch.nn.Identity()

    def score(pairs: Sequence[tuple[str, str]]) -> list[float]:
        return model.predict(
            list(pairs), batch_size=32, activation_fn=identity, show_progress_bar=False
        ).tolist()

    return score


def optimum_scorer(onnx_dir: str, max_length: int, threads: int) -> Scorer:
    """Contender B: the optimum recipe; all pairs in one call, padded to the longest, arrival order."""
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = ORTModelForSequenceClassification.from_pretrained(
        onnx_dir, session_options=options, provider="CPUExecutionProvider"
    )
    tokenizer = AutoTokenizer.from_pretrained(onnx_dir)

    def score(pairs: Sequence[tuple[str, str]]) -> list[float]:
        inputs = tokenizer(
            [q for q, _ in pairs],
            [p for _, p in pairs],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        return model(**inputs).logits[:, 0].tolist()

    return score


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(PREFIX + json.dumps(message) + "\n")
    sys.stdout.flush()


def serve(score: Scorer, pool: list[str], seed: int) -> None:
    from bench.workload import make_request

    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "exit":
            return
        if command["op"] == "score":
            pairs = make_request(pool, command["workload"], command["k"], command["index"], seed).pairs()
        else:
            pairs = [tuple(pair) for pair in command["pairs"]]
        started = time.perf_counter()
        scores = score(pairs)
        seconds = time.perf_counter() - started
        emit({"seconds": seconds, "scores": scores, "peak_rss_kb": peak_rss_kb()})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contender", choices=["sentence-transformers", "optimum"], required=True)
    parser.add_argument("--model", required=True, help="HF-format model dir (A) or optimum ONNX dir (B)")
    parser.add_argument("--max-length", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    import torch
    from tokenizers import Tokenizer

    from bench.workload import word_pool

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    if args.contender == "sentence-transformers":
        score = sentence_transformers_scorer(args.model, args.max_length)
    else:
        score = optimum_scorer(args.model, args.max_length, args.threads)
    pool = word_pool(Tokenizer.from_file(str(Path(args.model) / "tokenizer.json")).get_vocab())
    emit({"ready": True, "load_s": time.perf_counter() - started, "peak_rss_kb": peak_rss_kb()})
    serve(score, pool, args.seed)


if __name__ == "__main__":
    main()
