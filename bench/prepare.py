"""Build every model a benchmark config needs, and the optimum ONNX export contender B loads.

Runs in its own process (`python -m bench.prepare`) so torch, the fine-tune and the exports
never live in the orchestrator that later times the contenders. Prints one JSON line: the
stamp of each model (recipe + fine-tune report). Reuses anything already built from the same recipe.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from bench import config as bench_config
from bench.finetune import FinetuneRecipe
from bench.models import STAMP, build_minilm, build_random, read_stamp
from bench.shapes import MINILM_L6, SHAPES


def model_dir(build_dir: Path, name: str) -> Path:
    return build_dir / "models" / name


def optimum_dir(build_dir: Path, name: str) -> Path:
    return build_dir / "optimum" / name


def build_model(build_dir: Path, name: str, seed: int) -> dict[str, Any]:
    out = model_dir(build_dir, name)
    if name == MINILM_L6.name:
        return build_minilm(out, FinetuneRecipe(seed=seed))
    return build_random(SHAPES[name], out, seed)


def export_optimum(source: Path, out: Path) -> float:
    """Contender B's own export (optimum's ONNX exporter), redone whenever the source model changed."""
    source_stamp = read_stamp(source)
    if read_stamp(out) == source_stamp and (out / "model.onnx").exists():
        return 0.0
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    started = time.perf_counter()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ORTModelForSequenceClassification.from_pretrained(source, export=True).save_pretrained(tmp)
    AutoTokenizer.from_pretrained(source).save_pretrained(tmp)
    (tmp / STAMP).write_text(json.dumps(source_stamp, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", choices=["full", "quick"], default="full")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    config = getattr(bench_config, args.config)()
    report: dict[str, Any] = {}
    for block in config.blocks:
        if block.model in report:
            continue
        started = time.perf_counter()
        stamp = build_model(config.build_dir, block.model, config.seed)
        entry: dict[str, Any] = {"stamp": stamp, "build_s": round(time.perf_counter() - started, 1)}
        if "B" in block.contenders:
            source = model_dir(config.build_dir, block.model)
            entry["optimum_export_s"] = round(
                export_optimum(source, optimum_dir(config.build_dir, block.model)), 1
            )
        report[block.model] = entry
    print("@@prepare " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
