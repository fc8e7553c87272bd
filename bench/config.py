"""What one benchmark run measures: the grid, repetitions, threads and safety limits.

`full()` is what `make bench` runs (about 20 minutes on 2 cores); `quick()` is a smoke run of
the same code paths in a few minutes, for developing the benchmark itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from reranker_server.config import DEFAULT_MAX_BATCH_TOKENS

from bench.workload import Workload

ContenderKey = Literal["A", "B", "C", "D"]
CONTENDERS: Final[dict[str, str]] = {
    "A": "sentence-transformers CrossEncoder.predict (PyTorch fp32, batch 32)",
    "B": "optimum ORTModelForSequenceClassification (ONNX fp32, one call, padded to longest)",
    "C": "kube-reranker server fp32 over HTTP",
    "D": "kube-reranker server int8 over HTTP",
}
ROOT: Final = Path(__file__).resolve().parent.parent
#: The memory guard kills a contender past this, or any when the machine has less than that left.
WORKER_MEMORY_CAP_GIB: Final = 14.0
MIN_AVAILABLE_GIB: Final = 1.5


@dataclass(frozen=True)
class Point:
    """One grid cell: `reps` timed rounds of requests of k candidates, after the warm-up round(s)."""

    workload: Workload
    k: int
    reps: int


@dataclass(frozen=True)
class Block:
    """Contenders started once for one model and max_length, then measured interleaved cell by cell."""

    model: str
    max_length: int
    contenders: tuple[ContenderKey, ...]
    points: tuple[Point, ...]
    first_request: tuple[Workload, int]
    fidelity: bool = False
    concurrency: bool = False


@dataclass(frozen=True)
class Concurrency:
    clients: tuple[int, ...] = (1, 4, 16)
    # mixed at the block's max_length: compute-bound, the honest worst case for batching gains;
    # short: snippets, where per-request overhead is large enough for merging requests to matter.
    workloads: tuple[Workload, ...] = ("mixed", "short")
    k: int = 10
    # Per level and round: 16 clients x 2 requests each. Rounds interleave the levels (1, 4, 16,
    # then 16, 4, 1, ...) so the machine's drift hits every level alike.
    requests_per_level: int = 32
    rounds: int = 3
    servers: tuple[ContenderKey, ...] = ("C", "D")
    # Requests the model-only batching ceiling (bench.ceiling) scores lone and merged.
    ceiling_requests: int = 16


@dataclass(frozen=True)
class BenchConfig:
    blocks: tuple[Block, ...]
    concurrency: Concurrency = field(default_factory=Concurrency)
    threads: int = 2
    seed: int = 0
    warmup_rounds: int = 1
    settle_s: float = 0.1
    fidelity_queries: int = 20
    fidelity_candidates: int = 40
    server_max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS["cpu"]  # what a CPU pod runs by default
    server_warmup_requests: int | None = None  # None: the server's default, as a pod runs it
    worker_memory_cap_gib: float = WORKER_MEMORY_CAP_GIB
    min_available_gib: float = MIN_AVAILABLE_GIB
    request_timeout_s: float = 600.0
    quiet_max_other_cores: float = 0.25
    quiet_timeout_s: float = 90.0
    first_request_followups: int = 3
    build_dir: Path = ROOT / "build" / "bench"
    results_dir: Path = ROOT / "bench" / "results"
    name: str = "full"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["build_dir"] = (
            str(self.build_dir.relative_to(ROOT))
            if self.build_dir.is_relative_to(ROOT)
            else str(self.build_dir)
        )
        data["results_dir"] = (
            str(self.results_dir.relative_to(ROOT))
            if self.results_dir.is_relative_to(ROOT)
            else str(self.results_dir)
        )
        return data


def _minilm_points(reps: dict[int, int], ks: tuple[int, ...]) -> tuple[Point, ...]:
    return tuple(Point(workload, k, reps[k]) for k in ks for workload in ("equal", "mixed"))


def full() -> BenchConfig:
    reps = {10: 6, 40: 5, 100: 3}
    minilm = "minilm-l6-h384"
    all_contenders: tuple[ContenderKey, ...] = ("A", "B", "C", "D")
    return BenchConfig(
        blocks=(
            Block(
                minilm, 256, all_contenders, _minilm_points(reps, (10, 40, 100)), ("equal", 40), fidelity=True
            ),
            Block(
                minilm,
                512,
                all_contenders,
                _minilm_points(reps, (10, 40, 100)),
                ("equal", 40),
                concurrency=True,
            ),
            Block(
                "bert-base-h768",
                256,
                all_contenders,
                (Point("equal", 10, 3), Point("mixed", 10, 3)),
                ("equal", 10),
            ),
            Block("xlmr-large-h1024", 256, ("A", "C", "D"), (Point("equal", 10, 2),), ("equal", 10)),
        )
    )


def quick() -> BenchConfig:
    minilm = "minilm-l6-h384"
    return BenchConfig(
        blocks=(
            Block(
                minilm,
                256,
                ("A", "B", "C", "D"),
                (Point("equal", 10, 2), Point("mixed", 10, 2)),
                ("equal", 10),
                fidelity=True,
                concurrency=True,
            ),
        ),
        concurrency=Concurrency(clients=(1, 4), requests_per_level=8, rounds=2, ceiling_requests=4),
        fidelity_queries=4,
        quiet_timeout_s=0.0,
        name="quick",
    )


def only(config: BenchConfig, keys: str) -> BenchConfig:
    """The same config restricted to some contenders (blocks left without any are dropped)."""
    blocks = tuple(
        replace(block, contenders=tuple(key for key in block.contenders if key in keys))
        for block in config.blocks
    )
    return replace(config, blocks=tuple(block for block in blocks if block.contenders))


def select_blocks(config: BenchConfig, names: list[str]) -> BenchConfig:
    """Only the blocks named `model:max_length` (all when none are named)."""
    if not names:
        return config
    known = {f"{block.model}:{block.max_length}": block for block in config.blocks}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown block(s) {unknown}; known: {sorted(known)}")
    return replace(config, blocks=tuple(known[name] for name in names))
