"""The gpu backend on a GPU: per-token time of the engine's calls vs their token budget, and one
k=100 request through the engine against eager PyTorch (fp32 and fp16, batches of 32).

What chose the gpu default of `--max-batch-tokens`. Needs a GPU machine with onnxruntime-gpu and
torch. A machine that cannot receive the bench's graphs (90 MB and more) gets their skeletons,
the graphs without their large weights, and refills them with seeded random values: the same
shapes and operators, so the same time per token (scores are meaningless and unused):

    here:  python -m bench.gpu strip build/bench/server-cache/onnx/<model>/model.onnx SKELETON_DIR
    there: python -m bench.gpu measure SKELETON_DIR ... --out gpu.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.workload import make_request, word_pool

#: Initializers above this many elements are dropped from a skeleton (biases and norms stay).
SKELETON_MIN_ELEMENTS = 4096
BUDGETS = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
REQUEST_BUDGETS = (8192, 32768)
K = 100
MAX_LENGTH = 512
REPEATS = 5


def strip(graph: Path, skeleton_dir: Path, min_elements: int = SKELETON_MIN_ELEMENTS) -> None:
    """Write the graph without its large initializers, their shapes, tokenizer.json and config.json."""
    import onnx

    model = onnx.load(str(graph))
    shapes = {}
    for initializer in model.graph.initializer:
        # Only float weights travel as shapes: an integer table (position ids) is data, not a weight.
        if initializer.data_type == onnx.TensorProto.FLOAT and int(np.prod(initializer.dims)) > min_elements:
            shapes[initializer.name] = list(initializer.dims)
            initializer.ClearField("raw_data")
            initializer.ClearField("float_data")
            initializer.dims[:] = [0]
    skeleton_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(skeleton_dir / "skeleton.onnx"))
    (skeleton_dir / "shapes.json").write_text(json.dumps(shapes))
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(graph.parent / name, skeleton_dir / name)


def restore(skeleton_dir: Path, model_dir: Path) -> None:
    """A servable model directory from a skeleton: LayerNorm scales 1, biases 0, weights N(0, 0.05)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(skeleton_dir / "skeleton.onnx"))
    shapes = json.loads((skeleton_dir / "shapes.json").read_text())
    rng = np.random.default_rng(0)
    for initializer in model.graph.initializer:
        if initializer.name in shapes:
            dims = shapes[initializer.name]
            if "LayerNorm.weight" in initializer.name:
                values = np.ones(dims, np.float32)
            elif initializer.name.endswith("bias"):
                values = np.zeros(dims, np.float32)
            else:
                values = rng.normal(0.0, 0.05, dims).astype(np.float32)
            initializer.CopyFrom(numpy_helper.from_array(values, initializer.name))
    (model_dir / "onnx").mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(model_dir / "onnx" / "model.onnx"))
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(skeleton_dir / name, model_dir / name)


def median_seconds(job: Callable[[], object], repeats: int = REPEATS) -> float:
    job()
    job()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        job()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def measure_model(model_dir: Path, cache: Path) -> dict[str, Any]:
    import torch
    from reranker_server.engine import Engine
    from reranker_server.microbatch import plan_micro_batches
    from reranker_server.preparation.store import ModelStore
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    files = ModelStore(cache, offline=True).resolve(str(model_dir), "main", "none", fuse=False)
    engine = Engine(files, backend="gpu", max_length=MAX_LENGTH, threads=4)
    record: dict[str, Any] = {"providers": engine.providers, "us_per_token": {}, "k100_ms": {}}
    rng = np.random.default_rng(0)
    for length in (256, 512):
        rows = [rng.integers(1000, 20000, length) for _ in range(K)]
        types = np.zeros(length, np.int64)
        for budget in BUDGETS:
            calls = [
                engine.pad([rows[i] for i in batch], [types] * len(batch))
                for batch in plan_micro_batches([length] * K, budget)
            ]
            seconds = median_seconds(lambda calls=calls: [engine.run(feeds) for feeds in calls])
            record["us_per_token"][f"L{length}/{budget}"] = round(1e6 * seconds / (K * length), 3)

    config = json.loads((model_dir / "config.json").read_text())
    kept = {
        key: value for key, value in config.items() if key not in ("architectures", "id2label", "label2id")
    }
    torch_config = BertConfig(**{**kept, "num_labels": 1})
    fp32 = BertForSequenceClassification(torch_config).cuda().eval()
    fp16 = BertForSequenceClassification(torch_config).cuda().eval().half()
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(engine.pad_id)
    pool = word_pool(Tokenizer.from_file(str(model_dir / "tokenizer.json")).get_vocab())

    def eager(model: Any, pairs: list[tuple[str, str]]) -> None:
        with torch.inference_mode():
            for start in range(0, len(pairs), 32):
                chunk = pairs[start : start + 32]
                batch = tokenizer(
                    [query for query, _ in chunk],
                    [passage for _, passage in chunk],
                    padding=True,
                    truncation=True,
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                ).to("cuda")
                model(**batch).logits.float().cpu()

    for workload in ("equal", "mixed"):
        request = make_request(pool, workload, K, 0)

        def ours(budget: int, request: Any = request) -> None:
            pairs = engine.encode(request.query, list(request.passages))
            for batch in plan_micro_batches(pairs.lengths, budget):
                engine.run(engine.pad([pairs.ids[i] for i in batch], [pairs.type_ids[i] for i in batch]))

        cell = {f"engine_budget_{b}": median_seconds(lambda b=b: ours(b)) for b in REQUEST_BUDGETS}
        pairs = request.pairs()
        cell["torch_fp32"] = median_seconds(lambda pairs=pairs: eager(fp32, pairs))
        cell["torch_fp16"] = median_seconds(lambda pairs=pairs: eager(fp16, pairs))
        record["k100_ms"][f"{workload}/L{MAX_LENGTH}"] = {key: round(1000 * s, 1) for key, s in cell.items()}
    return record


def measure(skeletons: Sequence[Path], out: Path, workdir: Path) -> None:
    import onnxruntime
    import torch

    result: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(),
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "models": {},
    }
    for skeleton in skeletons:
        model_dir = workdir / "models" / skeleton.name
        restore(skeleton, model_dir)
        result["models"][skeleton.name] = measure_model(model_dir, workdir / "cache")
        print(skeleton.name, json.dumps(result["models"][skeleton.name]), flush=True)
        out.write_text(json.dumps(result, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    stripping = commands.add_parser("strip", help="write a graph's skeleton (on the machine that has it)")
    stripping.add_argument("graph", type=Path)
    stripping.add_argument("skeleton_dir", type=Path)
    measuring = commands.add_parser("measure", help="refill skeletons and measure (on the GPU machine)")
    measuring.add_argument("skeletons", type=Path, nargs="+")
    measuring.add_argument("--out", type=Path, required=True)
    measuring.add_argument("--workdir", type=Path, default=Path("/tmp/kube-reranker-gpu"))
    args = parser.parse_args(argv)
    if args.command == "strip":
        strip(args.graph, args.skeleton_dir)
    else:
        measure(args.skeletons, args.out, args.workdir)


if __name__ == "__main__":
    main()
