"""What the open-loop load sweep runs: its workloads, contenders, ladder and durations.

`full()` is the sweep whose numbers are quoted (about 35 minutes on 2 cores, see bench.loadsweep);
`quick()` is a smoke run of the same code paths in a few minutes, for developing the benchmark.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

from bench.config import ROOT
from bench.workload import Workload

LoadContender = Literal["st-fastapi", "optimum-fastapi", "ours-fp32", "ours-int8", "ours-int8-strict"]
LOAD_CONTENDERS: Final[dict[str, str]] = {
    "st-fastapi": (
        "the seed's recipe: sentence-transformers CrossEncoder (PyTorch fp32) behind FastAPI, "
        "uvicorn --workers 2, 1 torch thread per worker"
    ),
    "optimum-fastapi": (
        "optimum ORTModelForSequenceClassification one-call export (ONNX fp32, padded to longest) "
        "behind FastAPI, uvicorn --workers 2, 1 ONNX Runtime thread per worker"
    ),
    "ours-fp32": (
        "kube-reranker server fp32, 2 intra-op threads, defaults: token admission while the predicted "
        "finish is within 0.8 x the SLO, deadline 4 x SLO"
    ),
    "ours-int8": (
        "kube-reranker server int8, 2 intra-op threads, defaults: token admission while the predicted "
        "finish is within 0.8 x the SLO, deadline 4 x SLO"
    ),
    "ours-int8-strict": (
        "kube-reranker server int8 with requestTimeoutMs = the SLO: admission within 0.8 x the SLO, "
        "and an answer that would be late is a 503 at the SLO"
    ),
}
#: The seed's recipe: the baseline the capacity goals divide by.
BASELINE: Final = "st-fastapi"
MODEL: Final = "minilm-l6-h384"


@dataclass(frozen=True)
class LoadWorkload:
    """One traffic shape: k passages of a seeded length mix per request, and its latency objective."""

    name: str
    kind: Workload
    k: int
    max_length: int
    slo_ms: int

    @property
    def slo_s(self) -> float:
        return self.slo_ms / 1000


CHAT_RAG: Final = LoadWorkload("chat-rag", "rag", k=40, max_length=256, slo_ms=1000)
# Snippet passages (<= 64 + 12 + 3 tokens) never reach max_length; 256 is the pod's setting.
SNIPPETS: Final = LoadWorkload("snippets", "short", k=10, max_length=256, slo_ms=300)


@dataclass(frozen=True)
class LoadConfig:
    workloads: tuple[LoadWorkload, ...] = (CHAT_RAG, SNIPPETS)
    contenders: tuple[LoadContender, ...] = (
        "st-fastapi",
        "optimum-fastapi",
        "ours-fp32",
        "ours-int8",
        "ours-int8-strict",
    )
    #: Seconds of Poisson arrivals per offered rate, stretched at low rates to expect at least
    #: `min_requests` arrivals (a P95 needs samples), but never past `max_step_s`.
    step_s: float = 20.0
    min_requests: int = 30
    max_step_s: float = 45.0
    #: Rate rungs: start_fraction x parallelism / single-request latency, then x factor per step.
    start_fraction: float = 0.4
    factor: float = 1.25
    overload_multiple: float = 2.0
    max_steps: int = 11
    #: The client gives up this many SLOs after a request was due (a timeout counts as an error).
    #: Our server answers 503 at its own deadline of 4 SLOs, before the client gives up.
    timeout_per_slo: float = 5.0
    max_error_share: float = 0.01
    #: Distinct seeded requests per workload; arrival i sends request i modulo this.
    distinct_requests: int = 256
    warmup_rounds: int = 2
    probe_requests: int = 3
    #: After a step, wait (bounded) until the contender's processes use less than this many cores:
    #: a recipe keeps scoring requests its callers abandoned, which must not spill into the next step.
    idle_max_cores: float = 0.15
    idle_timeout_s: float = 120.0
    threads: int = 2
    recipe_workers: int = 2
    seed: int = 0
    #: The factor the workloads' SLOs were multiplied by (1: as the issue sets them).
    slo_scale: float = 1.0
    model: str = MODEL
    build_dir: Path = ROOT / "build" / "bench"
    results_dir: Path = ROOT / "bench" / "results"
    name: str = "full"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("build_dir", "results_dir"):
            path: Path = getattr(self, key)
            data[key] = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        return data


def full() -> LoadConfig:
    return LoadConfig()


def quick() -> LoadConfig:
    return LoadConfig(
        step_s=4.0,
        min_requests=6,
        max_step_s=12.0,
        start_fraction=0.5,
        factor=2.0,
        max_steps=3,
        distinct_requests=32,
        warmup_rounds=1,
        probe_requests=2,
        idle_timeout_s=30.0,
        name="quick",
    )


def scale_slos(config: LoadConfig, factor: float) -> LoadConfig:
    """Every workload's SLO times `factor`: for a machine much slower or faster than the 2-core
    VMs the SLOs were set on (the issue allows it, and the results file records it)."""
    if factor <= 0:
        raise SystemExit(f"--slo-scale must be > 0, got {factor}")
    return replace(
        config,
        slo_scale=factor,
        workloads=tuple(replace(w, slo_ms=round(w.slo_ms * factor)) for w in config.workloads),
    )


def with_slo(config: LoadConfig, workload: str, slo_ms: int) -> LoadConfig:
    """One workload's SLO set outright (`--slo chat-rag=4000`), recorded in the results' config."""
    names = [w.name for w in config.workloads]
    if workload not in names or slo_ms <= 0:
        raise SystemExit(f"--slo needs one of {names} and a positive number of ms, got {workload}={slo_ms}")
    return replace(
        config,
        workloads=tuple(replace(w, slo_ms=slo_ms) if w.name == workload else w for w in config.workloads),
    )


def only(config: LoadConfig, contenders: list[str], workloads: list[str]) -> LoadConfig:
    """The same config restricted to some contenders and workloads (all when none are named)."""
    known_workloads = {w.name: w for w in config.workloads}
    unknown = [c for c in contenders if c not in LOAD_CONTENDERS] + [
        w for w in workloads if w not in known_workloads
    ]
    if unknown:
        raise SystemExit(
            f"unknown contender(s)/workload(s) {unknown}; "
            f"known: {sorted(LOAD_CONTENDERS)}, {sorted(known_workloads)}"
        )
    return replace(
        config,
        contenders=tuple(c for c in config.contenders if not contenders or c in contenders),
        workloads=tuple(w for w in config.workloads if not workloads or w.name in workloads),
    )
