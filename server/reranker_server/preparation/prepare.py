"""`reranker-server prepare`: one recipe in, one verified artefact directory out.

Downloads (or reads) the checkpoint, exports it when it ships no graph, fuses (CPU), quantises
(int8), then copies the graph, tokenizer and config into a scratch directory next to `out` with a
manifest, and renames it into place: `out` either does not exist or is complete, so a Job killed
half-way (OOM, eviction) leaves nothing a pod could load. Before the rename the artefact must pass
its own integrity check: canary logits computed by PyTorch on the original checkpoint, recomputed
with the prepared graph by ONNX Runtime.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from reranker_server.artefact import (
    CANARY_MIN_SPEARMAN,
    MANIFEST_NAME,
    ArtefactError,
    Canary,
    Manifest,
    ModelError,
    ModelFiles,
    Recipe,
    canary_tolerance,
    file_entries,
    read_artefact,
)
from reranker_server.engine import Engine, check_engine_canary
from reranker_server.preparation.store import ModelStore, build_atomically
from reranker_server.samples import CANARY_PAIRS

log = logging.getLogger(__name__)

#: Encoder families the server tokenises and runs as cross-encoders (one logit per pair).
SUPPORTED_MODEL_TYPES: Final = frozenset(
    {"bert", "roberta", "xlm-roberta", "camembert", "distilbert", "electra", "deberta-v2", "modernbert"}
)
#: Failures a retry cannot fix: `prepare` exits 1 and the Job fails at once (its podFailurePolicy);
#: anything else (a download cut off, a crash) exits 2 and the Job retries within its backoff limit.
PERMANENT_REASONS: Final = frozenset(
    {
        "RepositoryNotFound",
        "Unauthorized",
        "RevisionNotFound",
        "NoNetworkNothingCached",
        "UnsupportedArchitecture",
        "NoFastTokenizer",
        "ExportUnavailable",
        "IntegrityCheckFailed",
        "ArtefactConflict",
        "VolumeFull",
    }
)
#: Canary pairs are short: no truncation, whatever max_length the pods serve with.
CANARY_MAX_LENGTH: Final = 128
CANARY_THREADS: Final = 1


@dataclass(frozen=True)
class Prepared:
    """What a preparation reports: where the artefact is and what it holds."""

    directory: Path
    manifest: Manifest
    reused: bool


def prepare(
    recipe: Recipe, *, out: Path, cache_dir: Path, offline: bool, store: ModelStore | None = None
) -> Prepared:
    """Prepare `recipe` into `out`, or reuse what an earlier run of the same recipe left there."""
    if (out / MANIFEST_NAME).is_file():
        _, manifest = read_artefact(out)
        if manifest.recipe == recipe:
            log.info("%s already holds %s (%s): nothing to prepare", out, recipe.model, manifest.digest)
            return Prepared(out, manifest, reused=True)
        raise ArtefactError(
            f"{out} already holds an artefact of another recipe ({manifest.recipe}); prepare into a new "
            "directory",
            reason="ArtefactConflict",
        )
    started = time.monotonic()
    store = store or ModelStore(cache_dir, offline=offline)
    try:
        files = store.resolve(
            recipe.model, recipe.revision, recipe.quantization, fuse=recipe.backend == "cpu"
        )
        check_architecture(recipe.model, files.config)
        canary = reference_canary(store, recipe)
        build_atomically(out, lambda scratch: assemble(scratch, recipe, files, canary, started))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ModelError(
                f"the cache volume is full while preparing {recipe.model}: give the claim more space "
                "(model.cache.sizeMebibytes or a bigger PVC) or delete unused artefacts",
                reason="VolumeFull",
            ) from exc
        raise
    _, manifest = read_artefact(out)
    return Prepared(out, manifest, reused=False)


def exit_code_for(reason: str) -> int:
    return 1 if reason in PERMANENT_REASONS else 2


def result_line(prepared: Prepared, *, collected: Sequence[str] = ()) -> str:
    """One JSON line for people and for the operator (it reads the Job's termination message)."""
    manifest = prepared.manifest
    return json.dumps(
        {
            "artefact": str(prepared.directory),
            "collected": list(collected),
            "digest": manifest.digest,
            "resolvedCommit": manifest.resolved_commit,
            "sizeBytes": manifest.size_bytes,
            "preparationSeconds": manifest.preparation_seconds,
            "reused": prepared.reused,
        },
        sort_keys=True,
    )


def check_architecture(model: str, config: dict) -> None:
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelError(
            f"model {model!r} is a {model_type!r} model; kube-reranker serves encoder cross-encoders "
            f"({', '.join(sorted(SUPPORTED_MODEL_TYPES))}), not decoder-only LLM rerankers",
            reason="UnsupportedArchitecture",
        )


def reference_canary(store: ModelStore, recipe: Recipe) -> Canary | None:
    """PyTorch's logits for the canary pairs on the original weights; None without weights or torch."""
    checkpoint = store.checkpoint(recipe.model, recipe.revision)
    if checkpoint is None:
        log.warning("%s ships no PyTorch weights: its artefact has no integrity canaries", recipe.model)
        return None
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError:
        log.warning("torch is not installed: the artefact of %s has no integrity canaries", recipe.model)
        return None
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, attn_implementation="eager").eval()
    logits = []
    with torch.no_grad():
        for query, passage in CANARY_PAIRS:
            batch = tokenizer(
                query, passage, truncation="longest_first", max_length=CANARY_MAX_LENGTH, return_tensors="pt"
            )
            logits.append(float(model(**batch).logits[0, 0]))
    return Canary(
        pairs=[list(pair) for pair in CANARY_PAIRS],
        logits=logits,
        max_length=CANARY_MAX_LENGTH,
        tolerance=canary_tolerance(recipe.quantization, logits),
        min_spearman=CANARY_MIN_SPEARMAN[recipe.quantization],
    )


def assemble(scratch: Path, recipe: Recipe, files: ModelFiles, canary: Canary | None, started: float) -> None:
    """Graph (with its external weights), tokenizer, config and manifest, checked, into `scratch`."""
    # External-data files keep their names: the graph refers to them by name. Copies, not hard links:
    # onnx refuses an external-data file with several links (a hard-link attack, to its checker).
    for source in graph_files(files.graph):
        shutil.copyfile(source, scratch / source.name)
    shutil.copyfile(files.tokenizer, scratch / "tokenizer.json")
    (scratch / "config.json").write_text(json.dumps(files.config, indent=2))
    if canary is not None:
        verify(scratch, recipe, files, canary)
    import onnx
    import onnxruntime

    graph = onnx.load(str(scratch / files.graph.name), load_external_data=False)
    manifest = Manifest(
        recipe=recipe,
        resolved_commit=files.revision,
        graph=files.graph.name,
        tokenizer="tokenizer.json",
        config="config.json",
        fused=files.fused,
        files=file_entries(scratch),
        opset=max(entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx")),
        onnxruntime_version=onnxruntime.__version__,
        prepared_at=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        preparation_seconds=round(time.monotonic() - started, 3),
        canary=canary,
    )
    (scratch / MANIFEST_NAME).write_text(manifest.to_json())


def verify(scratch: Path, recipe: Recipe, files: ModelFiles, canary: Canary) -> None:
    """The prepared graph must reproduce PyTorch's canaries, or the preparation fails here."""
    prepared = dataclasses.replace(
        files, graph=scratch / files.graph.name, tokenizer=scratch / "tokenizer.json"
    )
    engine = Engine(prepared, backend="cpu", max_length=canary.max_length, threads=CANARY_THREADS)
    check = check_engine_canary(engine, canary)
    log.info("canary check of %s: %s", recipe.model, check.describe(canary))
    if not check.passed:
        advice = {
            "int8": "int8 does not hold for this model: use quantization none",
            "fp16": "fp16 does not hold for this model: use quantization none",
        }.get(
            recipe.quantization,
            "the ONNX export does not reproduce this checkpoint: please report it with the model id",
        )
        raise ArtefactError(
            f"the prepared graph of {recipe.model} does not reproduce PyTorch: "
            f"{check.describe(canary)}; {advice}",
            reason="IntegrityCheckFailed",
        )


def graph_files(graph: Path) -> list[Path]:
    """The graph and the external-data file(s) that sit beside it under its name."""
    return sorted(p for p in graph.parent.iterdir() if p.name.startswith(graph.name) and p.is_file())
