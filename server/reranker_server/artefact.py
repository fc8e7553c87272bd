"""A prepared model: the files the engine loads and the manifest that says what they are.

This is the contract between the preparation (`reranker_server.preparation`, the export image's
job) and the serving runtime: the runtime reads a prepared artefact only through `read_artefact`,
never through the code that made it. The manifest records the recipe, the resolved commit, every
file's sha256 and size, the opset and ONNX Runtime version, and canary logits computed by PyTorch
on the original checkpoint, which warm-up recomputes before the pod may turn ready.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

#: none: fp32; int8: dynamic int8 for the CPU; fp16: half precision for the GPU.
Quantization = Literal["none", "int8", "fp16"]

MANIFEST_NAME: Final = "manifest.json"
MANIFEST_FORMAT: Final = 1
#: BERT-style models reserve none of their position table; RoBERTa/XLM-R reserve padding_idx + 1.
ROBERTA_FAMILY: Final = frozenset({"roberta", "xlm-roberta", "camembert", "xlm-roberta-xl"})
#: Largest |logit - PyTorch logit| an fp32 graph may show on a canary: float reassociation in fused
#: kernels explains ~1e-6 (measured 7e-7 on the test model, fused); a lost head or a wrong tokenizer
#: moves logits by whole units.
FP32_TOLERANCE: Final = 1e-3
#: int8 error grows with the logit scale, so its bound is a share of the canaries' own spread. Measured:
#: test model 0.020 (spread 0.64), MiniLM-L6 weights with a seeded head 0.0034 (spread 0.054); the
#: fine-tuned MiniLM's worst pair over 800 was 0.64 at logit std 1.66 (docs/benchmarks.md). 15 % of the
#: spread keeps clearly different pairs in order; the floor covers heads whose logits barely differ.
INT8_SPREAD_SHARE: Final = 0.15
INT8_FLOOR: Final = 0.02
#: Rank agreement the canaries must keep with PyTorch (Spearman over 8 pairs: one swap of neighbours
#: gives 0.976, so int8 may swap near-ties but not reorder).
#: fp16 (gpu only): measured on ONNX Runtime's CPU provider, which runs the same fp16 graph, against
#: fp32 PyTorch over 48 pairs: test model 1.0e-3 (0.12 % of the spread), an XLM-R-shaped test model
#: 2.3e-3 (0.10 %), MiniLM-L6 weights 6e-5 (0.09 %), Spearman 0.9999 each. CUDA's fp16 kernels are
#: not measured yet (no GPU in that session): 3 % of the spread leaves them a 30x margin, the floor
#: covers flat heads, and 0.95 lets one pair of near-ties swap.
FP16_SPREAD_SHARE: Final = 0.03
FP16_FLOOR: Final = 0.01
CANARY_MIN_SPEARMAN: Final = {"none": 0.99, "int8": 0.8, "fp16": 0.95}
HASH_CHUNK: Final = 1 << 22


class ModelError(RuntimeError):
    """The model cannot be made servable; the message says which model and what to do.

    `reason` is a CamelCase word for machines: the operator puts it in the CR's ModelReady condition.
    """

    def __init__(self, message: str, *, reason: str = "ModelUnavailable") -> None:
        super().__init__(message)
        self.reason = reason


class ArtefactError(ModelError):
    """A prepared artefact is missing, incomplete or not what the server was asked to serve."""

    def __init__(self, message: str, *, reason: str = "ArtefactInvalid") -> None:
        super().__init__(message, reason=reason)


@dataclass(frozen=True)
class ModelFiles:
    """A servable model: the graph to load plus the directory holding tokenizer.json and config.json."""

    name: str
    revision: str
    graph: Path
    tokenizer: Path
    config: dict[str, Any]
    quantization: Quantization
    fused: bool = False
    #: The artefact's digest and canaries when it was loaded from a manifest; None when prepared on the spot.
    digest: str | None = None
    canary: Canary | None = None


@dataclass(frozen=True)
class Recipe:
    """Everything that changes the prepared graph; two equal recipes prepare identical artefacts."""

    model: str
    revision: str
    backend: Literal["cpu", "gpu"]
    quantization: Quantization


@dataclass(frozen=True)
class Canary:
    """Reference logits of `samples.CANARY_PAIRS` from PyTorch, and how far a graph may stray."""

    pairs: list[list[str]]
    logits: list[float]
    max_length: int
    tolerance: float
    min_spearman: float


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    recipe: Recipe
    resolved_commit: str
    graph: str
    tokenizer: str
    config: str
    fused: bool
    files: dict[str, FileEntry]
    opset: int
    onnxruntime_version: str
    prepared_at: str
    preparation_seconds: float
    canary: Canary | None
    format: int = MANIFEST_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """The identity of the artefact's bytes: equal digests, equal graphs, tokenizers and configs."""
        files = {name: asdict(entry) for name, entry in sorted(self.files.items())}
        return "sha256:" + hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()

    @property
    def size_bytes(self) -> int:
        return sum(entry.size for entry in self.files.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"digest": self.digest}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        if raw.get("format") != MANIFEST_FORMAT:
            raise ArtefactError(f"manifest format {raw.get('format')!r} is not {MANIFEST_FORMAT}: re-prepare")
        raw.pop("digest", None)
        canary = raw.pop("canary")
        return cls(
            **raw
            | {
                "recipe": Recipe(**raw["recipe"]),
                "files": {name: FileEntry(**entry) for name, entry in raw["files"].items()},
                "canary": Canary(**canary) if canary else None,
            }
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entries(directory: Path) -> dict[str, FileEntry]:
    """sha256 and size of every file of an artefact directory (the manifest excluded)."""
    return {
        path.name: FileEntry(sha256_of(path), path.stat().st_size)
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != MANIFEST_NAME
    }


def read_artefact(directory: Path) -> tuple[ModelFiles, Manifest]:
    """The files to serve from a prepared directory, checked against its manifest's names and sizes.

    Sizes, not hashes: a pod start should not read a multi-GB graph twice, and a truncated copy or a
    half-written volume shows in the sizes; what sizes cannot show, the canary check at warm-up does.
    """
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise ArtefactError(
            f"{directory} holds no {MANIFEST_NAME}: it was never prepared, or its preparation did not "
            "finish (run `reranker-server prepare --out` into it, or let the operator's Job do it)"
        )
    try:
        manifest = Manifest.from_json(path.read_text())
    except (ValueError, TypeError, KeyError) as exc:
        raise ArtefactError(f"{path} is not a readable manifest ({exc}): re-prepare the artefact") from exc
    for name, entry in manifest.files.items():
        file = directory / name
        if not file.is_file() or file.stat().st_size != entry.size:
            raise ArtefactError(
                f"{file} is missing or not {entry.size} bytes as the manifest records: the artefact is "
                "incomplete or was changed after preparation; re-prepare it"
            )
    files = ModelFiles(
        name=manifest.recipe.model,
        revision=manifest.resolved_commit,
        graph=directory / manifest.graph,
        tokenizer=directory / manifest.tokenizer,
        config=json.loads((directory / manifest.config).read_text()),
        quantization=manifest.recipe.quantization,
        fused=manifest.fused,
        digest=manifest.digest,
        canary=manifest.canary,
    )
    return files, manifest


@dataclass(frozen=True)
class CanaryCheck:
    max_error: float
    spearman: float
    passed: bool

    def describe(self, canary: Canary) -> str:
        return (
            f"largest logit error {self.max_error:.3g} (allowed {canary.tolerance:g}), Spearman "
            f"{self.spearman:.3f} (at least {canary.min_spearman:g}) over {len(canary.logits)} canary pairs"
        )


def canary_tolerance(quantization: Quantization, reference: Sequence[float]) -> float:
    spread = max(reference) - min(reference)
    if quantization == "fp16":
        return max(FP16_FLOOR, FP16_SPREAD_SHARE * spread)
    if quantization == "int8":
        return max(INT8_FLOOR, INT8_SPREAD_SHARE * spread)
    return FP32_TOLERANCE


def check_canary(canary: Canary, logits: Sequence[float]) -> CanaryCheck:
    """Compare a graph's canary logits with PyTorch's: both the values and their order must hold."""
    expected, actual = np.asarray(canary.logits, dtype=np.float64), np.asarray(logits, dtype=np.float64)
    if expected.shape != actual.shape or not np.isfinite(actual).all():
        return CanaryCheck(max_error=float("inf"), spearman=float("nan"), passed=False)
    max_error = float(np.abs(expected - actual).max())
    rho = spearman(expected, actual)
    return CanaryCheck(max_error, rho, max_error <= canary.tolerance and rho >= canary.min_spearman)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation; scipy-free, since the serving image does not carry scipy."""
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if np.all(ranks_a == ranks_a[0]) or len(a) < 2:
        return 1.0
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def effective_max_length(config: dict[str, Any], requested: int) -> int:
    """The requested max_length bounded by the model's position table."""
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or positions <= 0:
        return requested
    if config.get("model_type") in ROBERTA_FAMILY:
        positions -= int(config.get("pad_token_id", 1)) + 1
    return min(requested, positions)
