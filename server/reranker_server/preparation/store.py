"""Resolve `--model` to the files the engine loads: an ONNX graph, a tokenizer and a config.

A model is a local directory or a Hugging Face model id. An id is downloaded once into the cache
volume; a directory without an ONNX graph is exported once (torch, `export` extra); `--quantize
int8` quantises once. Every derived artefact is built in a temporary directory next to its final
place and renamed into it, so a crash or an OOM kill mid-way never leaves a half-written graph
that a later start would load; the final directory exists only when complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from reranker_server.artefact import ModelError, ModelFiles, Quantization, effective_max_length

log = logging.getLogger(__name__)

#: Where hub rerankers keep their graphs, most specific first (optimum and sentence-transformers layouts).
GRAPH_CANDIDATES: Final = ("onnx/model.onnx", "model.onnx")
GRAPH_NAME: Final = "model.onnx"
#: What the server needs from a hub repository besides weights; kept narrow because many repos
#: ship a dozen ONNX variants (O1-O4, qint8 per ISA) that would multiply the download.
HUB_METADATA_PATTERNS: Final = [
    "*.json",
    "*.txt",
    "*.model",
    "onnx/model.onnx",
    "onnx/model.onnx_data",
    "model.onnx",
    "model.onnx_data",
]
HUB_WEIGHT_PATTERNS: Final = (["*.safetensors"], ["pytorch_model*.bin"])


class ModelStore:
    """Turns a model reference into `ModelFiles`, downloading, exporting and quantising into a cache."""

    def __init__(
        self, cache_dir: Path, *, offline: bool, external_data_threshold_bytes: int | None = None
    ) -> None:
        from reranker_server.preparation.export import EXTERNAL_DATA_THRESHOLD_BYTES

        self.cache_dir = cache_dir
        self.offline = offline
        #: Graphs above this many bytes keep their weights in an external file (tests lower it).
        self.external_data_threshold_bytes = external_data_threshold_bytes or EXTERNAL_DATA_THRESHOLD_BYTES

    def resolve(self, model: str, revision: str, quantize: Quantization, *, fuse: bool = False) -> ModelFiles:
        """The graph to serve: shipped or exported, then (CPU) fused, then quantised if asked (int8 on
        CPU; fp16, fused for the GPU, on GPU)."""
        source, resolved_revision = self.source(model, revision)
        graph = find_graph(source)
        checkpoint = source
        if graph is None:
            graph = self.exported_graph(model, source)
            checkpoint = graph.parent
        tokenizer = find_file(("tokenizer.json",), graph.parent, checkpoint, source)
        if tokenizer is None:
            raise ModelError(
                f"model {model!r} has no tokenizer.json (the server needs a fast tokenizer): "
                f"run `reranker-server export --model {model}` to write one next to the graph",
                reason="NoFastTokenizer",
            )
        config_path = find_file(("config.json",), checkpoint, source, graph.parent)
        config = json.loads(config_path.read_text()) if config_path else {}
        fused = fuse and self.fused_graph(model, graph, config)
        if fused:
            graph = fused
        if quantize == "int8":
            graph = self.quantized_graph(model, graph, tokenizer, config)
        elif quantize == "fp16":
            graph, fused = self.half_graph(model, graph, config)
        return ModelFiles(
            name=model,
            revision=resolved_revision,
            graph=graph,
            tokenizer=tokenizer,
            config=config,
            quantization=quantize,
            fused=bool(fused),
        )

    def source(self, model: str, revision: str) -> tuple[Path, str]:
        """The directory holding the model: `model` itself, or its hub snapshot in the cache."""
        local = Path(model).expanduser()
        if local.is_dir():
            return local.resolve(), "local"
        if looks_like_path(model):
            raise ModelError(f"model directory {model!r} does not exist", reason="RepositoryNotFound")
        return self.download(model, revision)

    def download(self, model: str, revision: str) -> tuple[Path, str]:
        """Fetch what serving needs from the hub; weights only when the repo ships no ONNX graph."""
        snapshot = self._snapshot(model, revision, HUB_METADATA_PATTERNS)
        if find_graph(snapshot) is None:
            for patterns in HUB_WEIGHT_PATTERNS:
                snapshot = self._snapshot(model, revision, patterns)
                if any(snapshot.glob(patterns[0])):
                    break
        return snapshot, snapshot.name

    def checkpoint(self, model: str, revision: str) -> Path | None:
        """The directory holding PyTorch weights for `model`, downloading them if the repo has them.

        Serving never needs the weights of a repo that ships a graph; the preparation does, once,
        to record reference logits for the integrity canaries.
        """
        source, _ = self.source(model, revision)
        if weight_files_present(source):
            return source
        if Path(model).expanduser().is_dir():
            return None
        for patterns in HUB_WEIGHT_PATTERNS:
            snapshot = self._snapshot(model, revision, patterns)
            if weight_files_present(snapshot):
                return snapshot
        return None

    def _snapshot(self, model: str, revision: str, patterns: list[str]) -> Path:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            HFValidationError,
            LocalEntryNotFoundError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        where = self.cache_dir / "hub"
        try:
            return Path(
                snapshot_download(
                    model,
                    revision=revision,
                    cache_dir=where,
                    allow_patterns=patterns,
                    local_files_only=self.offline,
                )
            )
        except HFValidationError as exc:
            raise ModelError(
                f"model {model!r} is neither an existing directory nor a valid Hugging Face model id",
                reason="RepositoryNotFound",
            ) from exc
        except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
            why = "HF_HUB_OFFLINE is set" if self.offline else "the Hugging Face hub is not reachable"
            raise ModelError(
                f"model {model!r} (revision {revision!r}) is not in the cache at {where} and {why}. "
                f"Fill the cache where the hub is reachable (`reranker-server export --model {model} "
                f"--cache-dir <dir>`) and mount it as the cache volume, or set --model/RERANKER_MODEL "
                "to a local directory",
                reason="NoNetworkNothingCached",
            ) from exc
        except GatedRepoError as exc:
            raise ModelError(
                f"model {model!r} is gated: accept its licence on the hub and set HF_TOKEN",
                reason="Unauthorized",
            ) from exc
        except RevisionNotFoundError as exc:
            raise ModelError(
                f"model {model!r} has no revision {revision!r}: check --revision", reason="RevisionNotFound"
            ) from exc
        except RepositoryNotFoundError as exc:
            raise ModelError(
                f"model {model!r} was not found on the Hugging Face hub: check the id, "
                "or set HF_TOKEN if it is private",
                reason="RepositoryNotFound",
            ) from exc
        except (HfHubHTTPError, OSError) as exc:
            raise ModelError(
                f"downloading model {model!r} failed ({type(exc).__name__}); retry or check the network",
                reason="DownloadFailed",
            ) from exc

    def exported_graph(self, model: str, source: Path) -> Path:
        """The ONNX export of a checkpoint directory, built once into the cache."""
        from reranker_server.preparation.export import ExportUnavailable, export_checkpoint

        target = self.cache_dir / "onnx" / cache_key(model, source, weight_files(source))
        if not (target / GRAPH_NAME).is_file():
            log.info("model %s ships no ONNX graph: exporting it once into %s", model, target)
        try:
            build_atomically(
                target,
                lambda scratch: export_checkpoint(
                    source, scratch, external_data_threshold_bytes=self.external_data_threshold_bytes
                ),
            )
        except ExportUnavailable as exc:
            raise ModelError(
                f"model {model!r} ships no ONNX graph and cannot be exported here ({exc}). Run "
                f"`reranker-server export --model {model} --cache-dir <cache>` with the export extra "
                "installed, or serve a directory that has onnx/model.onnx",
                reason="ExportUnavailable",
            ) from exc
        return target / GRAPH_NAME

    def fused_graph(self, model: str, graph: Path, config: dict[str, Any]) -> Path | None:
        """The attention-fused version of `graph`, built once; None when it cannot be fused here."""
        from reranker_server.preparation.fusion import RECIPE, FusionUnavailable, fuse_graph

        target = self.cache_dir / "fused" / cache_key(model, graph.parent, [graph], salt=RECIPE)
        try:
            build_atomically(
                target,
                lambda scratch: fuse_graph(
                    graph,
                    scratch / GRAPH_NAME,
                    config,
                    external_data_threshold_bytes=self.external_data_threshold_bytes,
                ),
            )
        except FusionUnavailable as exc:
            log.info("serving %s unfused: %s", model, exc)
            return None
        except OSError as exc:
            log.warning("serving %s unfused: cannot write the fused graph into %s (%s)", model, target, exc)
            return None
        return target / GRAPH_NAME

    def quantized_graph(self, model: str, graph: Path, tokenizer: Path, config: dict[str, Any]) -> Path:
        """The int8 version of `graph`, cached apart from fp32 under a key of the fp32 graph and recipe."""
        from reranker_server.int8weights import weights_for_this_cpu
        from reranker_server.preparation.quantize import CALIBRATION_MAX_LENGTH, quantize_int8, recipe_key

        weights = weights_for_this_cpu()
        target = self.cache_dir / "int8" / cache_key(model, graph.parent, [graph], salt=recipe_key(weights))
        if not (target / GRAPH_NAME).is_file():
            log.info("quantising %s to int8 (%s weights for this CPU) once into %s", graph, weights, target)
        max_length = effective_max_length(config, CALIBRATION_MAX_LENGTH)
        build_atomically(
            target,
            lambda scratch: quantize_int8(
                graph,
                scratch / GRAPH_NAME,
                tokenizer=tokenizer,
                max_length=max_length,
                weights=weights,
                external_data_threshold_bytes=self.external_data_threshold_bytes,
            ),
        )
        return target / GRAPH_NAME

    def half_graph(self, model: str, graph: Path, config: dict[str, Any]) -> tuple[Path, bool]:
        """The fp16 version of `graph` (fused for the GPU where it can be), built once; and if it is fused.

        What fusion found is written beside the graph at build time, so a start-up that reuses the
        cache reads a few bytes instead of parsing the graph again.
        """
        from reranker_server.preparation.half import FUSED_ATTENTION, RECIPE, convert_fp16

        target = self.cache_dir / "fp16" / cache_key(model, graph.parent, [graph], salt=RECIPE)
        if not (target / GRAPH_NAME).is_file():
            log.info("converting %s to fp16 once into %s", graph, target)

        def build(scratch: Path) -> None:
            fused = convert_fp16(
                graph,
                scratch / GRAPH_NAME,
                config,
                external_data_threshold_bytes=self.external_data_threshold_bytes,
            )
            (scratch / FUSED_OPERATORS_NAME).write_text(json.dumps(fused))

        build_atomically(target, build)
        fused = json.loads((target / FUSED_OPERATORS_NAME).read_text())
        return target / GRAPH_NAME, bool(FUSED_ATTENTION & set(fused))


#: Beside a cached fp16 graph: the fused operators the conversion produced (not part of any artefact).
FUSED_OPERATORS_NAME: Final = "fused-operators.json"


def build_atomically(final: Path, build: Callable[[Path], object]) -> Path:
    """Run `build` into a scratch directory beside `final`, then rename it to `final`.

    The rename is atomic on one filesystem, so `final` either does not exist or is complete. When
    another process finished first, its result wins and ours is discarded.
    """
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        build(scratch)
        try:
            os.rename(scratch, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def find_graph(directory: Path) -> Path | None:
    for candidate in GRAPH_CANDIDATES:
        if (directory / candidate).is_file():
            return directory / candidate
    return None


def find_file(names: tuple[str, ...], *directories: Path) -> Path | None:
    for directory in directories:
        for name in names:
            if (directory / name).is_file():
                return directory / name
    return None


def weight_files_present(directory: Path) -> bool:
    return any(directory.glob("*.safetensors")) or any(directory.glob("pytorch_model*.bin"))


def weight_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.suffix in {".safetensors", ".bin", ".json"} and p.is_file()
    )


def cache_key(model: str, directory: Path, files: list[Path], salt: str = "") -> str:
    """A readable, collision-safe cache name: the model's name plus a digest of what built it.

    The digest covers the source's path, sizes and modification times: cheap on multi-GB weights,
    and a changed checkpoint or a new hub snapshot (its path holds the commit) gets a new key. `salt`
    names how the artefact is built, so a new recipe never reuses an older recipe's output.
    """
    digest = hashlib.sha256(str(directory.resolve()).encode())
    digest.update(salt.encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(model).name if looks_like_path(model) else model)
    slug = slug.strip("-.") or "model"
    return f"{slug[:48]}-{digest.hexdigest()[:16]}"


def looks_like_path(model: str) -> bool:
    """Hub ids are `name` or `org/name`; anything with a leading dot, slash or tilde is a path."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or os.sep in model.replace("/", "")
